"""GET /v1/balance and GET /v1/balance_transactions: the merchant's own balance, read from the
ledger, scoped to the caller's merchant and mode."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.ledger import postings
from apps.ledger.services import (
    ledger_post,
    ledger_release_pending_to_available,
    ledger_reverse,
)

CONNECTOR = "conn_balance_api"


def _capture(merchant_id, amount, *, fee=0, currency="eur", source="pi_1", livemode=False):
    return ledger_post(
        merchant_id=merchant_id,
        livemode=livemode,
        currency=currency,
        kind="capture",
        idempotency_key=f"{merchant_id}:{source}:{currency}:capture",
        legs=postings.capture_legs(connector=CONNECTOR, amount=amount, platform_fee=fee),
        source_type="payment_intent",
        source_id=source,
    )


def _release(merchant_id, amount, *, currency="eur", key="release"):
    return ledger_release_pending_to_available(
        merchant_id=merchant_id,
        livemode=False,
        currency=currency,
        amount=amount,
        idempotency_key=f"{merchant_id}:{key}",
    )


def _payout(merchant_id, amount, *, source="po_1"):
    return ledger_post(
        merchant_id=merchant_id,
        livemode=False,
        currency="eur",
        kind="payout",
        idempotency_key=f"{merchant_id}:{source}:payout",
        legs=postings.payout_legs(amount=amount),
        source_type="payout",
        source_id=source,
    )


@pytest.mark.django_db
def test_balance_is_empty_before_any_money_moved(api):
    body = api.get("/v1/balance").json()
    assert body == {"object": "balance", "livemode": False, "available": [], "pending": []}


@pytest.mark.django_db
def test_balance_shows_available_and_pending_per_currency(api, merchant, other_merchant):
    # given captures in two currencies, part released, part paid out
    _capture(merchant.id, 10_000, fee=300)  # 9_700 owed to the merchant
    _release(merchant.id, 6_000)
    _payout(merchant.id, 1_000)
    _capture(merchant.id, 500, currency="jpy", source="pi_2")
    # and money of another merchant, and of this one's live mode, which must not show
    _capture(other_merchant.id, 99_999, source="pi_other")
    _capture(merchant.id, 77_777, source="pi_live", livemode=True)

    body = api.get("/v1/balance").json()

    assert body["available"] == [
        {"amount": 5_000, "currency": "eur"},
        {"amount": 0, "currency": "jpy"},
    ]
    assert body["pending"] == [
        {"amount": 3_700, "currency": "eur"},
        {"amount": 500, "currency": "jpy"},
    ]


@pytest.mark.django_db
def test_balance_transactions_carry_type_amount_fee_net_and_source(api, merchant, other_merchant):
    capture = _capture(merchant.id, 10_000, fee=300)
    _release(merchant.id, 9_700)  # moves pending -> available: net 0, not listed
    payout = _payout(merchant.id, 2_000)
    failure = ledger_reverse(
        transaction=payout,
        idempotency_key="po_1:failure",
        reason="bank said no",
        kind="payout_failure",
    )
    _capture(other_merchant.id, 5_000, source="pi_other")

    body = api.get("/v1/balance_transactions").json()

    assert body["object"] == "list"
    assert body["has_more"] is False
    rows = {row["id"]: row for row in body["data"]}
    assert list(rows) == [failure.public_id, payout.public_id, capture.public_id]
    assert rows[capture.public_id] | {"created": 0} == {
        "id": capture.public_id,
        "object": "balance_transaction",
        "type": "capture",
        "amount": 10_000,
        "fee": 300,
        "net": 9_700,
        "currency": "eur",
        "source": "pi_1",
        "source_type": "payment_intent",
        "description": None,
        "created": 0,
    }
    assert (rows[payout.public_id]["net"], rows[payout.public_id]["source"]) == (-2_000, "po_1")
    assert (rows[failure.public_id]["type"], rows[failure.public_id]["net"]) == (
        "payout_failure",
        2_000,
    )


@pytest.mark.django_db
def test_balance_transactions_filters(api, merchant):
    eur = _capture(merchant.id, 1_000, source="pi_a")
    usd = _capture(merchant.id, 2_000, currency="usd", source="pi_b")
    _release(merchant.id, 1_000)
    payout = _payout(merchant.id, 400, source="po_x")

    def ids(**query):
        response = api.get("/v1/balance_transactions", query)
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["data"]]

    assert ids(currency="usd") == [usd.public_id]
    assert ids(currency="EUR") == [payout.public_id, eur.public_id]
    assert ids(type="payout") == [payout.public_id]
    assert ids(source="pi_a") == [eur.public_id]
    now = timezone.now()
    assert ids(**{"created[gte]": int((now - timedelta(minutes=5)).timestamp())}) == [
        payout.public_id,
        usd.public_id,
        eur.public_id,
    ]
    assert ids(**{"created[lt]": int((now - timedelta(minutes=5)).timestamp())}) == []


@pytest.mark.django_db
def test_balance_transactions_cursor_pagination(api, merchant):
    journals = [_capture(merchant.id, 100 + n, source=f"pi_{n}") for n in range(5)]
    newest_first = [j.public_id for j in reversed(journals)]

    first = api.get("/v1/balance_transactions", {"limit": 2}).json()
    assert [r["id"] for r in first["data"]] == newest_first[:2]
    assert first["has_more"] is True
    second = api.get(
        "/v1/balance_transactions", {"limit": 2, "starting_after": newest_first[1]}
    ).json()
    assert [r["id"] for r in second["data"]] == newest_first[2:4]
    back = api.get("/v1/balance_transactions", {"limit": 2, "ending_before": newest_first[2]})
    assert [r["id"] for r in back.json()["data"]] == newest_first[:2]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "code", "param"),
    [
        ({"type": "bogus"}, "parameter_invalid_choice", "type"),
        ({"currency": "xyz"}, "currency_invalid", "currency"),
        ({"limit": 0}, "parameter_min_value", "limit"),
        ({"starting_after": "txn_unknown"}, "resource_missing", "starting_after"),
    ],
)
def test_balance_transactions_bad_filters(api, merchant, query, code, param):
    _capture(merchant.id, 100)
    response = api.get("/v1/balance_transactions", query)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (code, param)


@pytest.mark.django_db
def test_another_merchants_journal_is_not_a_cursor(api, merchant, other_merchant):
    theirs = _capture(other_merchant.id, 100, source="pi_other")
    response = api.get("/v1/balance_transactions", {"starting_after": theirs.public_id})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "resource_missing"


@pytest.mark.django_db
def test_balance_endpoints_need_a_secret_key(client, publishable_key):
    for path in ("/v1/balance", "/v1/balance_transactions"):
        assert client.get(path).status_code == 401
        denied = client.get(path, HTTP_AUTHORIZATION=f"Bearer {publishable_key}")
        assert denied.status_code == 403
