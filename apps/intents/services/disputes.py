"""What a dispute does to its payment (called by apps.disputes.services inside its
transaction, after it locked the dispute): the `disputed` flag that stops refunds, and
`amount_disputed`, the amount disputes took back, which with the refunds can never exceed what
was received (a CHECK). A refund made before a dispute reduces what the dispute can take from
the merchant: the shopper is never paid twice."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from apps.intents.models import PaymentIntent
from apps.intents.services.common import _lock_intent


@dataclass(frozen=True)
class DisputeTake:
    """What a withdrawal took from the payment: `taken` (≤ what the payment still had),
    `taken_before` (refunds and earlier disputes), the payment's facts for the ledger."""

    taken: int
    taken_before: int
    amount_received: int
    splits: list[dict]


def intent_dispute_mark(*, intent_id: int, open: bool) -> None:
    """Opens or closes the payment's dispute flag (no refunds while it is set)."""
    PaymentIntent.objects.filter(pk=intent_id).exclude(disputed=open).update(
        disputed=open, updated_at=timezone.now()
    )


def intent_dispute_take(*, intent_id: int, amount: int) -> DisputeTake:
    """Reserves up to `amount` of what the payment still holds (received - refunded - disputed)."""
    intent = _lock_intent(intent_id, with_connector=False)
    before = intent.amount_refunded + intent.amount_disputed
    taken = max(0, min(amount, intent.amount_received - before))
    if taken:
        intent.amount_disputed += taken
        intent.save(update_fields=["amount_disputed", "updated_at"])
    return DisputeTake(
        taken=taken,
        taken_before=before,
        amount_received=intent.amount_received,
        splits=list(intent.splits or []),
    )


def intent_dispute_return(*, intent_id: int, amount: int) -> None:
    """A won dispute gives back what it took."""
    intent = _lock_intent(intent_id, with_connector=False)
    if amount:
        intent.amount_disputed -= amount
        intent.save(update_fields=["amount_disputed", "updated_at"])


def intent_fraud_notice_record(*, intent_id: int) -> None:
    """The PSP's fraud notification (informational: no dispute, no money)."""
    PaymentIntent.objects.filter(pk=intent_id).update(
        fraud_notified_at=timezone.now(), needs_review=True
    )
