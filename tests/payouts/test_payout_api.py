"""POST/GET /v1/payouts: from the available balance, through the ledger, idempotent, with an
outbox event in the same transaction."""

from __future__ import annotations

import pytest

from apps.core.errors import InvalidRequestError
from apps.events.models import OutboxEvent
from apps.ledger.models import JournalTransaction
from apps.payouts.models import Payout
from apps.payouts.services import payout_create
from tests.factories import PayoutFactory
from tests.payouts.conftest import available, fund, in_transit, make_seller

pytestmark = pytest.mark.django_db


def test_merchant_payout_books_the_available_balance_into_transit(api, merchant):
    # given 10_000 EUR available
    fund(merchant, 10_000)

    # when the merchant pays out 2_500
    response = api.post(
        "/v1/payouts",
        {"amount": 2_500, "currency": "EUR", "description": "weekly", "metadata": {"k": "v"}},
        format="json",
    )

    # then the payout is pending and the ledger moved the money in the same transaction
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"].startswith("po_")
    assert (body["status"], body["amount"], body["currency"], body["seller"]) == (
        "pending",
        2_500,
        "eur",
        None,
    )
    assert body["metadata"] == {"k": "v"}
    assert available(merchant) == 7_500
    assert in_transit(merchant) == 2_500
    journal = JournalTransaction.objects.get(public_id=body["balance_transaction"])
    assert (journal.kind, journal.source_type, journal.source_id) == (
        "payout",
        "payout",
        body["id"],
    )
    # and the payout.created event is in the outbox
    event = OutboxEvent.objects.get(object_id=body["id"])
    assert event.event_type == "payout.created"
    assert event.payload["status"] == "pending"


def test_seller_payout_comes_from_the_sellers_balance(api, merchant, seller):
    fund(merchant, 5_000)
    fund(merchant, 3_000, seller=seller)

    response = api.post(
        "/v1/payouts",
        {"amount": 3_000, "currency": "eur", "seller": seller.public_id},
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["seller"] == seller.public_id
    assert body["destination"] == seller.bank_token
    assert body["destination_last4"] == "3000"
    assert available(merchant, seller=seller) == 0
    assert available(merchant) == 5_000  # the merchant's own balance is untouched


def test_create_is_idempotent(api, merchant):
    fund(merchant, 10_000)
    body = {"amount": 1_000, "currency": "eur"}

    first = api.post("/v1/payouts", body, format="json", HTTP_IDEMPOTENCY_KEY="po-key-1")
    again = api.post("/v1/payouts", body, format="json", HTTP_IDEMPOTENCY_KEY="po-key-1")
    other = api.post(
        "/v1/payouts", {**body, "amount": 2_000}, format="json", HTTP_IDEMPOTENCY_KEY="po-key-1"
    )

    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert other.status_code == 400
    assert other.json()["error"]["type"] == "idempotency_error"
    assert Payout.objects.count() == 1
    assert JournalTransaction.objects.filter(kind="payout").count() == 1
    assert available(merchant) == 9_000


def test_retrieve_and_list_are_scoped(api, merchant, other_merchant, seller):
    fund(merchant, 10_000)
    fund(merchant, 10_000, seller=seller)
    fund(other_merchant, 10_000)
    own = [
        api.post("/v1/payouts", {"amount": 100 + n, "currency": "eur"}, format="json").json()
        for n in range(3)
    ]
    for_seller = api.post(
        "/v1/payouts",
        {"amount": 50, "currency": "eur", "seller": seller.public_id},
        format="json",
    ).json()
    theirs = PayoutFactory(merchant=other_merchant, amount=10, funded=False)

    assert api.get(f"/v1/payouts/{own[0]['id']}").json() == own[0]
    missing = api.get(f"/v1/payouts/{theirs.public_id}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "resource_missing"

    listed = api.get("/v1/payouts").json()
    assert [p["id"] for p in listed["data"]] == [for_seller["id"]] + [p["id"] for p in own[::-1]]
    by_seller = api.get("/v1/payouts", {"seller": seller.public_id}).json()
    assert [p["id"] for p in by_seller["data"]] == [for_seller["id"]]
    own_only = api.get("/v1/payouts", {"seller": "none", "limit": 2}).json()
    assert [p["id"] for p in own_only["data"]] == [own[2]["id"], own[1]["id"]]
    assert own_only["has_more"] is True
    assert api.get("/v1/payouts", {"status": "paid"}).json()["data"] == []
    bad = api.get("/v1/payouts", {"status": "lost"})
    assert (bad.status_code, bad.json()["error"]["param"]) == (400, "status")


def test_cancel_a_pending_payout_returns_the_money(api, merchant):
    fund(merchant, 1_000)
    payout = api.post("/v1/payouts", {"amount": 600, "currency": "eur"}, format="json").json()

    response = api.post(f"/v1/payouts/{payout['id']}/cancel")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "canceled"
    assert available(merchant) == 1_000
    assert in_transit(merchant) == 0
    events = list(
        OutboxEvent.objects.filter(object_id=payout["id"]).values_list("event_type", flat=True)
    )
    assert events == ["payout.created", "payout.canceled"]
    again = api.post(f"/v1/payouts/{payout['id']}/cancel")
    assert again.json()["status"] == "canceled"  # canceling twice changes nothing
    assert available(merchant) == 1_000


def test_payout_in_the_other_mode_sees_no_test_balance(merchant, system_actor):
    fund(merchant, 1_000)  # test mode
    seller = make_seller(merchant)
    with pytest.raises(InvalidRequestError) as refused:
        payout_create(
            merchant=merchant, livemode=True, amount=100, currency="eur", actor=system_actor
        )
    assert refused.value.code == "insufficient_balance"
    with pytest.raises(InvalidRequestError) as refused:
        payout_create(
            merchant=merchant,
            livemode=True,
            amount=100,
            currency="eur",
            seller=seller.public_id,
            actor=system_actor,
        )
    assert refused.value.code == "seller_not_found"
    assert Payout.objects.count() == 0
