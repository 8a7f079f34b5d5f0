from decimal import Decimal

import pytest

from apps.core.errors import InvalidRequestError
from apps.core.money import (
    currency_exponent,
    decimal_to_minor,
    minor_to_decimal,
    normalize_currency,
    validate_amount,
)


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [("usd", 2), ("EUR", 2), ("jpy", 0), ("kwd", 3), ("bhd", 3), ("clp", 0)],
)
def test_currency_exponents_come_from_iso_4217(currency, exponent):
    assert currency_exponent(currency) == exponent


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("zzz", "currency_invalid"),
        ("eu", "currency_invalid"),
        (123, "currency_invalid"),
        ("xau", "currency_unsupported"),
        ("xxx", "currency_unsupported"),
    ],
)
def test_unknown_or_unchargeable_currencies_are_refused(value, code):
    with pytest.raises(InvalidRequestError) as exc:
        normalize_currency(value)
    assert exc.value.code == code
    assert exc.value.param == "currency"


def test_currency_is_normalized_to_lower_case():
    assert normalize_currency("EUR") == "eur"


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        (0, "amount_too_small"),
        (-5, "amount_too_small"),
        (19.99, "amount_invalid"),
        ("1999", "amount_invalid"),
        (True, "amount_invalid"),
        (None, "amount_invalid"),
        (10**12, "amount_too_large"),
    ],
)
def test_bad_amounts_each_have_their_own_code(amount, code):
    with pytest.raises(InvalidRequestError) as exc:
        validate_amount(amount)
    assert exc.value.code == code
    assert exc.value.param == "amount"


def test_maximum_amount_is_configurable(settings):
    settings.MAX_PAYMENT_AMOUNT = 500
    assert validate_amount(500) == 500
    with pytest.raises(InvalidRequestError):
        validate_amount(501)


def test_decimal_parsing_is_exact_per_exponent():
    assert decimal_to_minor("19.99", "eur") == 1999
    assert decimal_to_minor(Decimal("1000"), "jpy") == 1000
    assert decimal_to_minor("1.234", "kwd") == 1234
    assert minor_to_decimal(1999, "usd") == Decimal("19.99")
    with pytest.raises(InvalidRequestError):
        decimal_to_minor("19.999", "eur")  # a sub-cent amount is refused, not rounded
    with pytest.raises(InvalidRequestError):
        decimal_to_minor("1.5", "jpy")
