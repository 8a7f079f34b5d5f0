"""The public shape of a payout: used by the API and by the outbox, so an event carries exactly
what GET would have returned at that moment."""

from __future__ import annotations

from apps.payouts.models import Payout


def _ts(value) -> int | None:
    return int(value.timestamp()) if value else None


def payout_representation(payout: Payout) -> dict:
    return {
        "id": payout.public_id,
        "object": "payout",
        "livemode": payout.livemode,
        "amount": payout.amount,
        "currency": payout.currency,
        "status": payout.status,
        "seller": payout.seller.public_id if payout.seller_id else None,
        "automatic": payout.automatic,
        "destination": payout.destination or None,
        "destination_last4": payout.destination_last4 or None,
        "description": payout.description or None,
        "metadata": payout.metadata,
        "balance_transaction": payout.ledger_transaction or None,
        "failure_code": payout.failure_code or None,
        "failure_message": payout.failure_message or None,
        "arrival_date": _ts(payout.arrival_date),
        "created": _ts(payout.created_at),
    }
