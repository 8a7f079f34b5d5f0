"""The money of a dispute: split payments share it like refunds, a refund before the dispute
reduces what it can take, a negative balance stops payouts, deadlines expire disputes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.errors import InvalidRequestError
from apps.disputes import selectors as dispute_selectors
from apps.disputes import services as dispute_services
from apps.disputes.models import Dispute
from apps.events.models import OutboxEvent
from apps.intents.models import PaymentIntent
from apps.ledger import chart
from apps.ledger import selectors as ledger_selectors
from apps.payouts import services as payout_services
from tests.disputes.conftest import assert_books_hold
from tests.disputes.test_dispute_lifecycle import FEE, merchant_pending, paid
from tests.factories import SellerFactory, fund_available


def balance(merchant, code) -> int:
    return ledger_selectors.account_balance(
        merchant_id=merchant.pk, livemode=False, currency="eur", code=code
    )


def test_a_dispute_on_a_split_payment_takes_from_the_sellers_in_proportion(
    api, merchant, system_actor, pay, stripe_only, stripe_side
):
    seller = SellerFactory(merchant=merchant, name="Seller", actor=system_actor)
    response = pay(amount=10000, splits=[{"seller": seller.public_id, "amount": 6000}])
    assert response.status_code == 200, response.content
    intent = PaymentIntent.objects.get(public_id=response.json()["id"])
    seller_before = balance(merchant, chart.seller_pending(seller.public_id))
    merchant_before = merchant_pending(merchant)
    stripe_side.open(intent)
    stripe_side.deliver(2)
    # 60 % of the disputed amount from the seller; the rest and the fee from the merchant
    assert balance(merchant, chart.seller_pending(seller.public_id)) == seller_before - 6000
    assert merchant_pending(merchant) == merchant_before - 4000 - FEE
    assert_books_hold(merchant)


def test_a_refund_before_the_dispute_reduces_what_a_lost_dispute_takes(
    api, merchant, pay, adyen_only, adyen_side, control
):
    intent = paid(pay, adyen_only, amount=3000)
    refund = api.post(
        "/v1/refunds", {"payment_intent": intent.public_id, "amount": 1000}, format="json"
    )
    assert refund.status_code == 200, refund.content
    # the issuer still disputes the whole payment (the PSP withdraws 3000)
    before = merchant_pending(merchant)
    opened = adyen_side.open(intent)
    control.dispute_action(opened["id"], "lose")
    adyen_side.deliver(3)
    dispute = Dispute.objects.get(intent=intent)
    assert dispute.status == "lost"
    intent = PaymentIntent.objects.get(pk=intent.pk)
    # the PSP disputes what the shopper had not got back: the refunded 1000 is never paid twice
    assert dispute.amount == 2000 and intent.amount_disputed == 2000
    assert intent.amount_refunded + intent.amount_disputed == intent.amount_received
    assert merchant_pending(merchant) == before - 2000 - FEE
    assert_books_hold(merchant)


def test_a_negative_balance_after_a_chargeback_stops_payouts(
    api, merchant, system_actor, pay, stripe_only, stripe_side
):
    intent = paid(pay, stripe_only, amount=500)
    stripe_side.open(intent)
    stripe_side.deliver(2)
    assert merchant_pending(merchant) < 0  # a receivable from the merchant
    with pytest.raises(InvalidRequestError) as refused:
        payout_services.payout_create(
            merchant=merchant, livemode=False, amount=100, currency="eur", actor=system_actor
        )
    assert refused.value.code == "balance_negative"
    assert_books_hold(merchant)


def test_funds_already_available_pay_out_only_what_disputes_leave(
    merchant, system_actor, pay, stripe_only, stripe_side
):
    fund_available(merchant, 10_000)
    intent = paid(pay, stripe_only, amount=5000)
    stripe_side.open(intent)
    stripe_side.deliver(2)
    # pending owes what the chargeback took beyond it; available still shows 10,000
    owed = -merchant_pending(merchant)
    assert owed > 0
    payable = payout_services.payable_amount(
        merchant_id=merchant.pk, livemode=False, currency="eur", seller=None
    )
    assert payable == 10_000 - owed
    with pytest.raises(InvalidRequestError) as refused:
        payout_services.payout_create(
            merchant=merchant,
            livemode=False,
            amount=payable + 1,
            currency="eur",
            actor=system_actor,
        )
    assert refused.value.code == "balance_negative"
    payout = payout_services.payout_create(
        merchant=merchant, livemode=False, amount=payable, currency="eur", actor=system_actor
    )
    assert payout.amount == payable
    assert_books_hold(merchant)


def test_deadlines_remind_at_72_and_24_hours_then_expire(
    api, merchant, pay, stripe_only, stripe_side
):
    intent = paid(pay, stripe_only)
    stripe_side.open(intent, due_in_days=5)
    stripe_side.deliver(2)
    dispute = Dispute.objects.get(intent=intent)
    due = dispute.evidence_due_by
    check = dispute_services.disputes_check_deadlines
    assert check(now=due - timedelta(hours=100)) == {
        "reminded_72h": 0,
        "reminded_24h": 0,
        "expired": 0,
    }
    assert check(now=due - timedelta(hours=70))["reminded_72h"] == 1
    assert check(now=due - timedelta(hours=60))["reminded_72h"] == 0  # once
    assert Dispute.objects.get(pk=dispute.pk).needs_attention
    assert check(now=due - timedelta(hours=20))["reminded_24h"] == 1
    body = api.get(f"/v1/disputes/{dispute.public_id}").json()
    assert body["evidence_details"]["reminder"] == "24h"
    assert check(now=due + timedelta(minutes=1))["expired"] == 1
    dispute = Dispute.objects.get(pk=dispute.pk)
    assert dispute.status == "expired" and dispute.closed_at is not None
    assert OutboxEvent.objects.filter(
        object_id=dispute.public_id, event_type="dispute.closed"
    ).exists()
    assert not PaymentIntent.objects.get(pk=intent.pk).disputed
    # the PSP's own closing notification later (lost) cannot move it
    stripe_side.control.dispute_action(dispute.psp_dispute_id, "expire")
    stripe_side.deliver(1)
    assert Dispute.objects.get(pk=dispute.pk).status == "expired"
    assert_books_hold(merchant)


def test_dispute_rate_per_merchant_and_connector(merchant, pay, stripe_only, stripe_side):
    first = paid(pay, stripe_only)
    paid(pay, stripe_only)
    stripe_side.open(first)
    stripe_side.deliver(2)
    rate = dispute_selectors.dispute_rate_for_merchant(merchant_id=merchant.pk)
    assert (rate.disputes, rate.captured) == (1, 2)
    assert rate.count_rate == 0.5 and rate.amount_rate == 0.5
    (by_connector,) = [
        r for r in dispute_selectors.dispute_rates(merchant_id=merchant.pk) if r.disputes
    ]
    assert by_connector.connector_id == stripe_only.pk
    later = dispute_selectors.dispute_rates(
        merchant_id=merchant.pk, now=timezone.now() + timedelta(days=31)
    )
    assert all(r.disputes == 0 for r in later)
