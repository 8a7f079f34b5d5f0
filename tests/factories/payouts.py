"""Payouts through apps.payouts.services: the payout journal (available -> in transit) booked
with the row, so PostgreSQL holds the balance; the outbox event and the audit entry."""

from __future__ import annotations

import factory

from apps.payouts import services as payout_services
from apps.payouts.models import Payout
from tests.factories.base import ServiceFactory
from tests.factories.ledger import fund_available
from tests.factories.merchants import MerchantFactory


class PayoutFactory(ServiceFactory):
    """A pending payout of the merchant's own balance, or of `seller`'s (a Seller). With
    `funded=True` (the default) the amount is first made available through the ledger (a
    capture, then its release), so the payout never depends on other funds; `funded=False` when
    the test funds the balance itself."""

    class Meta:
        model = Payout

    merchant = factory.SubFactory(MerchantFactory)
    livemode = False
    amount = 1_000
    currency = "eur"
    seller = None
    funded = True

    @classmethod
    def _create(cls, model_class, *, funded, seller, **fields) -> Payout:
        if funded:
            fund_available(
                fields["merchant"],
                fields["amount"],
                currency=fields["currency"],
                seller=seller,
                livemode=fields["livemode"],
            )
        return payout_services.payout_create(
            seller=seller.public_id if seller is not None else None, **fields
        )
