"""The pure parts of the audit: card-number detection and the PSP comparison on rows that the
simulator would refuse to produce (it never lets a refund exceed the capture)."""

from __future__ import annotations

import pytest

from apps.money_audit.card_scan import card_numbers_in, luhn_valid
from apps.money_audit.checks import BROKEN, HELD, psp_checks


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("card 4242424242424242 here", ["424242…4242"]),
        ("card 4242 4242 4242 4242 here", ["424242…4242"]),
        ("card 4242-4242-4242-4242 here", ["424242…4242"]),
        ("amex 3782 822463 10005", ["378282…0005"]),
        ('{"number": "5555555555554444"}', ["555555…4444"]),
        ("4000056655665556", ["400005…5556"]),
        ("2223003122003222 2-series", ["222300…3222"]),
        ("4242424242424241", []),  # Luhn-invalid
        ("sha 4242424242424242ab", []),  # inside a hex token
        ("id pi_4242424242424242", ["424242…4242"]),  # after an underscore: still in clear
        ("ts 1733232345123", []),  # 13-digit millisecond timestamp: not a card prefix
        ("4242 4242 42424242", []),  # mixed grouping: not how card numbers are written
        ("42424242424242424242", []),  # 20 digits: not a card number
        ("masked 424242******4242", []),
        ("4242 4242 4242 4242 12 items", ["424242…4242"]),  # a short group after the card
    ],
)
def test_card_numbers_are_found_by_shape_and_luhn(text, found):
    assert card_numbers_in(text) == found


def test_luhn():
    assert luhn_valid("4242424242424242")
    assert luhn_valid("378282246310005")
    assert not luhn_valid("4242424242424241")


def _intent(**fields):
    base = {
        "public_id": "pi_1",
        "status": "succeeded",
        "capture_method": "automatic",
        "amount": 1000,
        "amount_capturable": 0,
        "amount_received": 1000,
        "amount_refunded": 0,
        "connector_id": 1,
        "psp_reference": "pi_psp",
        "pending_operation": "",
        "needs_review": False,
        "attempts": [{"public_id": "pa_1", "outcome": "approved", "connector_id": 1}],
        "refunds": [],
    }
    return {**base, **fields}


def _charge(**fields):
    base = {
        "id": "ch_1",
        "connector": "stripe-x",
        "payment_id": "pi_psp",
        "reference": "pa_1",
        "status": "captured",
        "amount": 1000,
        "amount_captured": 1000,
        "amount_refunded": 0,
    }
    return {**base, **fields}


def _statuses(results):
    return {r.name: r.status for r in results}


def test_a_consistent_intent_holds_every_psp_check():
    results, figures = psp_checks([_intent()], [_charge()], [], simulator_connectors={"stripe-x"})
    assert set(_statuses(results).values()) == {HELD}
    assert figures["charges_ours"] == 1


def test_refunds_beyond_the_capture_at_the_psp_are_named():
    refunds = [
        {
            "id": "re_a",
            "payment_id": "pi_psp",
            "reference": "re_1",
            "status": "succeeded",
            "amount": 700,
        },
        {
            "id": "re_b",
            "payment_id": "pi_psp",
            "reference": "re_2",
            "status": "pending",
            "amount": 700,
        },
    ]
    intent = _intent(
        amount_refunded=1000,
        refunds=[
            {"public_id": "re_1", "amount": 700, "status": "succeeded", "psp_reference": "re_a"},
            {"public_id": "re_2", "amount": 300, "status": "pending", "psp_reference": ""},
        ],
    )
    results, _ = psp_checks(
        [intent], [_charge(amount_refunded=1400)], refunds, simulator_connectors=set()
    )
    by_name = {r.name: r for r in results}
    assert by_name["psp_refunds_within_captured"].status == BROKEN
    assert {o.id for o in by_name["psp_refunds_within_captured"].offenders} == {"pi_1"}
    details = " ".join(o.detail for o in by_name["psp_refunds_within_captured"].offenders)
    assert "PSP refunds 1400 > PSP captured 1000" in details
    assert "refunded 1400" in details
