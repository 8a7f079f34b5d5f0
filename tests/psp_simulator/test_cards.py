"""The test-card table: one source of truth, valid numbers, consistent codes."""

from __future__ import annotations

from apps.psp_adapters.decline_codes import DECLINE_CLASSES, HARD, SOFT
from apps.psp_simulator import cards


def test_every_table_number_passes_luhn_and_appears_once():
    numbers = [card.number for card in cards.TEST_CARDS]

    assert len(numbers) == len(set(numbers))
    assert all(cards.luhn_valid(number) for number in numbers)


def test_stripe_published_numbers_keep_their_documented_outcomes():
    expected = {
        "4242424242424242": (cards.APPROVE, ""),
        "4000000000000002": (cards.DECLINE, "generic_decline"),
        "4000000000009995": (cards.DECLINE, "insufficient_funds"),
        "4000000000009987": (cards.DECLINE, "lost_card"),
        "4000000000009979": (cards.DECLINE, "stolen_card"),
        "4000000000000069": (cards.DECLINE, "expired_card"),
        "4000000000000127": (cards.DECLINE, "incorrect_cvc"),
        "4000000000000119": (cards.DECLINE, "processing_error"),
        "4100000000000019": (cards.DECLINE, "fraudulent"),
        "4000002500003155": (cards.REQUIRES_ACTION, ""),
        "4000000000003220": (cards.REQUIRES_ACTION, ""),
        "5555555555554444": (cards.APPROVE, ""),
        "378282246310005": (cards.APPROVE, ""),
    }
    for number, (outcome, decline_code) in expected.items():
        card = cards.card_for(number)
        assert (card.outcome, card.decline_code) == (outcome, decline_code), number
        assert card.source == "stripe"


def test_simulator_only_numbers_are_marked_and_cover_what_stripe_lacks():
    simulator_only = {c.decline_code or c.outcome for c in cards.TEST_CARDS if c.source != "stripe"}

    assert {"do_not_honor", "try_again_later", "issuer_not_available"} <= simulator_only
    assert cards.SLOW_APPROVE in simulator_only
    for card in cards.TEST_CARDS:
        if card.source == "simulator":
            # Visa 40000099…, and Mastercard 51000099… for Mastercard-only advice codes
            assert card.number.startswith(("40000099", "51000099"))


def test_decline_codes_are_known_to_the_adapters_hard_soft_table():
    for card in cards.TEST_CARDS:
        if card.outcome == cards.DECLINE:
            assert card.decline_code in DECLINE_CLASSES, card.decline_code
            assert card.adyen_refusal_code and card.adyen_refusal_reason and card.raw_response
    assert DECLINE_CLASSES["lost_card"] == HARD
    assert DECLINE_CLASSES["do_not_honor"] == SOFT


def test_unknown_valid_numbers_approve_without_keeping_the_number():
    card = cards.card_for("4111 1111 1111 1111")

    assert card.outcome == cards.APPROVE
    assert card.brand == "visa"
    assert card.number == ""  # the full number is never kept


def test_luhn_invalid_numbers_decline_as_incorrect_number():
    card = cards.card_for("4242424242424241")

    assert card.outcome == cards.DECLINE
    assert card.decline_code == "incorrect_number"
    assert card.adyen_refusal_code == "8"
