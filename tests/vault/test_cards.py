"""Card-number rules: brand from IIN ranges, lengths, Luhn, and the BIN table."""

import pytest

from apps.vault import cards


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        ("4242424242424242", "visa"),
        ("4222222222222", "visa"),
        ("5555555555554444", "mastercard"),
        ("2223003122003222", "mastercard"),
        ("2720990000000007", "mastercard"),
        ("378282246310005", "amex"),
        ("341111111111111", "amex"),
        ("6011111111111117", "discover"),
        ("6445644564456445", "discover"),
        ("6500000000000002", "discover"),
        ("3566002020360505", "jcb"),
        ("3056930009020004", "diners"),
        ("36227206271667", "diners"),
        ("6200000000000005", "unionpay"),
        ("6205500000000000004", "unionpay"),
        ("9999999999999995", "unknown"),
        ("2721000000000004", "unknown"),  # just past the mastercard 2-series
    ],
)
def test_brand_from_iin(number, brand):
    assert cards.detect_brand(number) == brand
    assert cards.length_valid(number, brand)


def test_stripe_test_cards_pass_luhn_and_a_typo_does_not():
    for number in ("4242424242424242", "378282246310005", "36227206271667", "6205500000000000004"):
        assert cards.luhn_valid(number)
    assert not cards.luhn_valid("4242424242424241")


@pytest.mark.parametrize(
    ("number", "funding", "country"),
    [
        ("4242424242424242", "credit", "US"),
        ("4000000000000002", "credit", "US"),  # decline test card
        ("4000056655665556", "debit", "US"),
        ("5200828282828210", "debit", "US"),
        ("5105105105105100", "prepaid", "US"),
        ("6200000000000047", "debit", "US"),
        ("4000000760000002", "credit", "BR"),
        ("4000002500000003", "credit", "FR"),
        ("4000007560000009", "credit", "CH"),
        ("4000007520000008", "credit", "SE"),  # same first 8 digits as CH: longest prefix wins
        ("5555558265554449", "debit", "GB"),
        ("4111111111111111", "unknown", ""),
    ],
)
def test_bin_table(number, funding, country):
    assert cards.bin_facts(number) == cards.BinFacts(funding, country)


def test_cvc_length_is_four_for_amex_only():
    assert cards.cvc_length("amex") == 4
    assert {cards.cvc_length(b) for b in cards.BRANDS if b != "amex"} == {3}
