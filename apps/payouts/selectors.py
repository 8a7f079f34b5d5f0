"""Payout reads, scoped to the caller's merchant and mode."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from apps.core.errors import NotFoundError
from apps.ledger import selectors as ledger_selectors
from apps.payouts.models import Payout


def payout_list(
    *,
    merchant_id: int,
    livemode: bool,
    status: str | None = None,
    seller: str | None = None,
    created_gte: datetime | None = None,
    created_lte: datetime | None = None,
) -> QuerySet[Payout]:
    """`seller="sel_…"` filters one seller's payouts; `seller="none"` the merchant's own."""
    payouts = Payout.objects.filter(merchant_id=merchant_id, livemode=livemode).select_related(
        "seller"
    )
    if status:
        payouts = payouts.filter(status=status)
    if seller == "none":
        payouts = payouts.filter(seller__isnull=True)
    elif seller:
        payouts = payouts.filter(seller__public_id=seller)
    if created_gte:
        payouts = payouts.filter(created_at__gte=created_gte)
    if created_lte:
        payouts = payouts.filter(created_at__lte=created_lte)
    return payouts


def payout_get(*, merchant_id: int, livemode: bool, public_id: str) -> Payout:
    try:
        return payout_list(merchant_id=merchant_id, livemode=livemode).get(public_id=public_id)
    except Payout.DoesNotExist:
        raise NotFoundError(f"No such payout: {public_id!r}.", param="id") from None


def payout_journals(*, payout: Payout):
    """Drill-down: the payout's ledger journals (each round's payout, paid or reversal)."""
    return ledger_selectors.journals_for_source(
        source_id=payout.public_id, merchant_id=payout.merchant_id
    )
