"""Every checkout money movement lands in the ledger, in the same transaction, balanced."""

import pytest

from apps.ledger import selectors as ledger_selectors
from apps.ledger.chart import MERCHANT_PENDING, PSP_FEES, psp_receivable

pytestmark = pytest.mark.usefixtures("connectors")


def _pending(merchant):
    return ledger_selectors.account_balance(
        merchant_id=merchant.id, livemode=False, currency="eur", code=MERCHANT_PENDING
    )


def _assert_books_balance():
    for trial in ledger_selectors.trial_balance():
        assert trial.total_debit == trial.total_credit
        assert trial.pending_debits == trial.pending_credits


def test_automatic_capture_posts_receivable_fee_and_merchant_pending(
    pay, merchant, stripe_connector
):
    intent_id = pay(amount=10000).json()["id"]
    fee = 25 + 140  # fixed 25 + 1.40% of 100.00 EUR (the connector's fee schedule)
    assert _pending(merchant) == 10000 - fee
    assert (
        ledger_selectors.account_balance(
            merchant_id=merchant.id,
            livemode=False,
            currency="eur",
            code=psp_receivable(stripe_connector.public_id),
        )
        == 10000 - fee
    )
    assert (
        ledger_selectors.account_balance(
            merchant_id=merchant.id, livemode=False, currency="eur", code=PSP_FEES
        )
        == fee
    )
    kinds = [j.kind for j in ledger_selectors.journals_for_source(source_id=intent_id)]
    assert kinds == ["capture"]
    _assert_books_balance()


def test_manual_capture_holds_then_posts_only_the_captured_amount(api, pay, merchant):
    intent_id = pay(amount=5000, capture_method="manual").json()["id"]
    assert _pending(merchant) == 0  # only a hold so far
    _assert_books_balance()
    api.post(f"/v1/payment_intents/{intent_id}/capture", {"amount_to_capture": 3000}, format="json")
    assert _pending(merchant) == 3000 - (25 + 42)
    kinds = [j.kind for j in ledger_selectors.journals_for_source(source_id=intent_id)]
    assert kinds[0] == "authorization_hold" and "capture" in kinds
    _assert_books_balance()


def test_void_releases_the_hold_and_posts_nothing(api, pay, merchant):
    intent_id = pay(amount=5000, capture_method="manual").json()["id"]
    api.post(f"/v1/payment_intents/{intent_id}/cancel", {}, format="json")
    assert _pending(merchant) == 0
    kinds = [j.kind for j in ledger_selectors.journals_for_source(source_id=intent_id)]
    assert kinds == ["authorization_hold", "void"]
    _assert_books_balance()


def test_refund_takes_the_money_back_from_the_merchant(api, pay, merchant):
    intent_id = pay(amount=10000).json()["id"]
    before = _pending(merchant)
    refund = api.post(
        "/v1/refunds", {"payment_intent": intent_id, "amount": 4000}, format="json"
    ).json()
    assert refund["status"] == "succeeded"
    assert _pending(merchant) == before - 4000
    _assert_books_balance()


def test_a_decline_posts_nothing(pay, merchant):
    response = pay(number="4000000000009987")
    assert response.status_code == 402
    intent_id = response.json()["error"]["payment_intent"]["id"]
    assert list(ledger_selectors.journals_for_source(source_id=intent_id)) == []
