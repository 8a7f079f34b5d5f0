"""Splits on a payment intent: sellers' pending balances are credited on capture, refunds take
back in proportion, and bad splits are refused with nothing written."""

import pytest

from apps.intents.models import PaymentIntent
from apps.ledger import selectors as ledger_selectors
from apps.ledger.chart import MERCHANT_PENDING, PLATFORM_FEE_REVENUE, seller_pending
from tests.factories import SellerFactory

pytestmark = pytest.mark.usefixtures("connectors")

BANK = {
    "country": "DE",
    "currency": "eur",
    "account_holder_name": "Seller GmbH",
    "account_number": "DE89370400440532013000",
}


def _seller(merchant, actor, name):
    return SellerFactory(merchant=merchant, name=name, bank_account=dict(BANK), actor=actor)


def _balance(merchant, code):
    return ledger_selectors.account_balance(
        merchant_id=merchant.id, livemode=False, currency="eur", code=code
    )


def test_capture_credits_each_seller_and_the_platform_fee(pay, merchant, system_actor, api):
    a, b = _seller(merchant, system_actor, "A"), _seller(merchant, system_actor, "B")
    response = pay(
        amount=10000,
        splits=[{"seller": a.public_id, "amount": 6000}, {"seller": b.public_id, "amount": 2000}],
        platform_fee_amount=500,
    )
    assert response.status_code == 200, response.content
    assert response.json()["splits"][0] == {"seller": a.public_id, "amount": 6000}
    assert _balance(merchant, seller_pending(a.public_id)) == 6000
    assert _balance(merchant, seller_pending(b.public_id)) == 2000
    fee = 25 + 140
    assert _balance(merchant, PLATFORM_FEE_REVENUE) == 500 + fee
    assert _balance(merchant, MERCHANT_PENDING) == 10000 - 6000 - 2000 - 500 - fee

    # a half refund takes half of each seller's share back
    refund = api.post(
        "/v1/refunds", {"payment_intent": response.json()["id"], "amount": 5000}, format="json"
    )
    assert refund.json()["status"] == "succeeded"
    assert _balance(merchant, seller_pending(a.public_id)) == 3000
    assert _balance(merchant, seller_pending(b.public_id)) == 1000


def test_splits_above_the_amount_are_refused(pay, merchant, system_actor):
    a = _seller(merchant, system_actor, "A")
    response = pay(
        amount=1000, splits=[{"seller": a.public_id, "amount": 900}], platform_fee_amount=200
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "splits_exceed_amount"
    assert PaymentIntent.objects.count() == 0


def test_a_seller_of_another_merchant_is_refused(pay, other_merchant, system_actor):
    foreign = _seller(other_merchant, system_actor, "Foreign")
    response = pay(amount=1000, splits=[{"seller": foreign.public_id, "amount": 100}])
    assert response.status_code in (400, 404)
    assert response.json()["error"]["param"] == "splits[0][seller]"
    assert PaymentIntent.objects.count() == 0


@pytest.mark.parametrize(
    ("split", "param"),
    [
        ({"seller": "sel_x", "amount": 0}, "splits[0][seller]"),
        ({"amount": 10}, "splits[0][seller]"),
        ({"seller": "sel_x", "amount": 10, "extra": 1}, "splits[0][extra]"),
    ],
)
def test_malformed_splits_name_the_param(pay, split, param):
    response = pay(amount=1000, splits=[split])
    assert response.status_code in (400, 404)
    assert response.json()["error"]["param"] == param
    assert PaymentIntent.objects.count() == 0
