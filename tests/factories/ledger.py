"""Ledger journals through apps.ledger.services (the posting engine: balanced legs, running
balances, the append-only tables' triggers), and funds made available the way money reaches a
balance: a capture crediting pending, then the ledger's release to available."""

from __future__ import annotations

import itertools
import uuid

import factory

from apps.ledger import chart, postings
from apps.ledger.chart import Leg
from apps.ledger.models import JournalTransaction
from apps.ledger.services import ledger_post, ledger_release_pending_to_available

CONNECTOR = "conn_test"
FUNDING_RECEIVABLE = chart.psp_receivable("conn_payouts_test")
_fundings = itertools.count(1)


def fund_available(merchant, amount: int, *, currency="eur", seller=None, livemode=False) -> None:
    """Makes `amount` available to the merchant (or a seller, a Seller): a capture-like journal
    crediting the pending balance, then the ledger's release of pending to available."""
    key = f"fund:{merchant.pk}:{next(_fundings)}:{uuid.uuid4().hex[:8]}"
    seller_id = seller.ledger_id if seller is not None else None
    pending = chart.MERCHANT_PENDING if seller is None else chart.seller_pending(seller_id)
    ledger_post(
        merchant_id=merchant.pk,
        livemode=livemode,
        currency=currency,
        kind="capture",
        idempotency_key=f"{key}:capture",
        legs=[Leg.debit(FUNDING_RECEIVABLE, amount), Leg.credit(pending, amount)],
        source_type="payment_intent",
        source_id=f"pi_{key}",
    )
    ledger_release_pending_to_available(
        merchant_id=merchant.pk,
        livemode=livemode,
        currency=currency,
        amount=amount,
        seller_id=seller_id,
        idempotency_key=f"{key}:release",
    )


class JournalTransactionFactory(factory.django.DjangoModelFactory):
    """A posted capture journal (receivable at `connector`, the merchant's pending balance, the
    PSP fee) through `ledger_post`. The ledger knows merchants by id only (it is a leaf), so
    `merchant_id` is a number; `legs=[...]` for any other balanced journal of `kind`."""

    class Meta:
        model = JournalTransaction

    class Params:
        amount = 4200
        psp_fee = 0
        connector = CONNECTOR

    merchant_id = factory.Sequence(lambda n: 900_000 + n)
    livemode = False
    currency = "eur"
    kind = "capture"
    source_type = "payment_intent"
    source_id = factory.LazyFunction(lambda: f"pi_{uuid.uuid4().hex[:12]}")
    idempotency_key = factory.LazyAttribute(lambda o: f"{o.source_id}:{o.kind}")
    legs = factory.LazyAttribute(
        lambda o: postings.capture_legs(connector=o.connector, amount=o.amount, psp_fee=o.psp_fee)
    )

    @classmethod
    def _build(cls, model_class, *args, **kwargs):
        raise TypeError("JournalTransactionFactory posts through the ledger only: call it")

    @classmethod
    def _create(cls, model_class, **fields) -> JournalTransaction:
        return ledger_post(**fields)
