"""Bad payout requests: each refused with a clear code and param, and nothing written (no
payout, no journal, no account opened, no event, no stored idempotency key)."""

from __future__ import annotations

import pytest

from apps.core.models import AuditLogEntry
from apps.events.models import OutboxEvent
from apps.ledger.models import JournalTransaction, LedgerAccount, LedgerEntry
from apps.payouts.models import Payout
from tests.payouts.conftest import US_BANK, available, fund, make_seller

pytestmark = pytest.mark.django_db


def _rows() -> tuple[int, ...]:
    return (
        Payout.objects.count(),
        JournalTransaction.objects.count(),
        LedgerEntry.objects.count(),
        LedgerAccount.objects.count(),
        OutboxEvent.objects.count(),
        AuditLogEntry.objects.filter(action="payout.created").count(),
    )


@pytest.fixture
def funded(merchant, seller):
    fund(merchant, 5_000)
    fund(merchant, 2_000, seller=seller)


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"amount": 5_001, "currency": "eur"}, "insufficient_balance", "amount"),
        ({"amount": 1, "currency": "usd"}, "insufficient_balance", "amount"),  # no USD at all
        ({"amount": 0, "currency": "eur"}, "amount_too_small", "amount"),
        ({"amount": -100, "currency": "eur"}, "amount_too_small", "amount"),
        ({"amount": 10.5, "currency": "eur"}, "amount_invalid", "amount"),
        ({"amount": "100", "currency": "eur"}, "amount_invalid", "amount"),
        ({"amount": True, "currency": "eur"}, "amount_invalid", "amount"),
        ({"amount": 10**13, "currency": "eur"}, "amount_too_large", "amount"),
        ({"amount": 100, "currency": "xyz"}, "currency_invalid", "currency"),
        ({"amount": 100, "currency": "euro"}, "currency_invalid", "currency"),
        ({"amount": 100, "currency": "xts"}, "currency_unsupported", "currency"),
        ({"amount": 100}, "parameter_missing", "currency"),
        ({"currency": "eur"}, "parameter_missing", "amount"),
        ({"amount": 100, "currency": "eur", "seller": "sel_unknown"}, "seller_not_found", "seller"),
        ({"amount": 100, "currency": "eur", "seller": "acct_1"}, "seller_invalid", "seller"),
        (
            {"amount": 100, "currency": "eur", "destination": "x"},
            "parameter_unknown",
            "destination",
        ),
        ({"amount": 100, "currency": "eur", "description": "x" * 256}, None, "description"),
    ],
)
def test_bad_payout_requests_write_nothing(api, funded, body, code, param):
    before = _rows()

    response = api.post("/v1/payouts", body, format="json", HTTP_IDEMPOTENCY_KEY="bad-payout")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["param"] == param
    if code:
        assert error["code"] == code
    assert _rows() == before
    # the idempotency key was not stored: a corrected request under it goes through
    fixed = api.post(
        "/v1/payouts",
        {"amount": 100, "currency": "eur"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="bad-payout",
    )
    assert fixed.status_code == 200, fixed.content


def test_insufficient_balance_says_what_is_available(api, funded):
    response = api.post("/v1/payouts", {"amount": 5_001, "currency": "eur"}, format="json")
    assert "5000" in response.json()["error"]["message"]


def test_seller_payout_above_the_sellers_balance(api, merchant, seller, funded):
    # the merchant's 5_000 do not cover a seller payout above the seller's own 2_000
    before = _rows()
    response = api.post(
        "/v1/payouts",
        {"amount": 2_001, "currency": "eur", "seller": seller.public_id},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "insufficient_balance"
    assert seller.public_id in response.json()["error"]["message"]
    assert _rows() == before
    assert available(merchant, seller=seller) == 2_000


def test_seller_of_another_merchant_is_refused(api, other_merchant, funded):
    theirs = make_seller(other_merchant)
    fund(other_merchant, 1_000, seller=theirs)
    before = _rows()

    response = api.post(
        "/v1/payouts",
        {"amount": 100, "currency": "eur", "seller": theirs.public_id},
        format="json",
    )

    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == (
        "seller_not_found",
        "seller",
    )
    assert _rows() == before
    assert available(other_merchant, seller=theirs) == 1_000


def test_payout_currency_must_be_the_bank_accounts(api, merchant):
    us_seller = make_seller(merchant, bank=US_BANK)
    fund(merchant, 1_000, seller=us_seller)
    before = _rows()

    response = api.post(
        "/v1/payouts",
        {"amount": 100, "currency": "eur", "seller": us_seller.public_id},
        format="json",
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("bank_account_currency_mismatch", "currency")
    assert _rows() == before
