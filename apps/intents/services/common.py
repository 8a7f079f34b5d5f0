"""What the checkout-plane services share: the intent lock, the state error, and the outbox
record of every intent, attempt and refund change (its own row, in the change's transaction)."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import TYPE_CHECKING

from apps.core.errors import ConflictError
from apps.events.services import (
    outbox_record,
    outbox_record_change,
)
from apps.intents.models import IntentStatus, PaymentAttempt, PaymentIntent, Refund
from apps.intents.representations import (
    attempt_representation,
    intent_representation,
    refund_representation,
)

if TYPE_CHECKING:
    from apps.vault.models import PaymentMethod

logger = logging.getLogger(__name__)


S = IntentStatus

CANCELLATION_REASONS = {
    "duplicate",
    "fraudulent",
    "requested_by_customer",
    "abandoned",
    "expired",
    "failed_invoice",
    "void_invoice",
    "automatic",
}
REFUND_REASONS = {"duplicate", "fraudulent", "requested_by_customer", "expired_uncaptured_charge"}


def _unexpected_state(intent: PaymentIntent, action: str) -> ConflictError:
    return ConflictError(
        f"You cannot {action} this PaymentIntent because it has a status of {intent.status}.",
        code="payment_intent_unexpected_state",
        extra={"payment_intent_status": intent.status},
    )


def _lock_intent(
    intent_id: int, *, with_connector: bool = True, payment_method: PaymentMethod | None = None
) -> PaymentIntent:
    """The intent, locked, with its payment method and connector. The confirm path passes
    with_connector=False (it sets the connector from the attempt) and, in tx B, the payment
    method tx A loaded (the intent cannot change it while processing): every joined row costs
    ORM time on each payment."""
    related = ["connector"] if with_connector else []
    if payment_method is None:
        related.append("payment_method")
    intent = (
        PaymentIntent.objects.select_for_update(of=("self",))
        .select_related(*related)
        .get(pk=intent_id)
    )
    # a different one (impossible while processing) would simply be read when first used
    if payment_method is not None and intent.payment_method_id == payment_method.pk:
        intent.payment_method = payment_method
    return intent


@lru_cache(maxsize=1)
def _attempt_and_intent_lock_sql() -> str:
    intent = PaymentIntent._meta
    columns = ", ".join(f'i."{f.column}"' for f in intent.concrete_fields)
    return (
        f"SELECT {columns}, a.outcome AS attempt_outcome"
        f" FROM {PaymentAttempt._meta.db_table} a"
        f" JOIN {intent.db_table} i ON i.id = a.intent_id"
        " WHERE a.id = %s FOR UPDATE OF a, i"
    )


def _lock_attempt_and_intent(
    attempt_id: int, *, payment_method: PaymentMethod
) -> tuple[str, PaymentIntent]:
    """tx B: the attempt's outcome and its intent, both rows locked, in one statement (the
    attempt's row first, then the intent's, as every path that locks both does). The intent as
    `_lock_intent(with_connector=False, payment_method=…)` gives it."""
    intent = next(iter(PaymentIntent.objects.raw(_attempt_and_intent_lock_sql(), [attempt_id])))
    if intent.payment_method_id == payment_method.pk:
        intent.payment_method = payment_method
    return intent.attempt_outcome, intent


def _emit(intent: PaymentIntent, event_type: str, previous: dict | None = None) -> None:
    outbox_record_change(
        obj=intent,
        object_type="payment_intent",
        event_type=event_type,
        payload=intent_representation(intent),
        previous=previous,
    )


def _emit_refund(refund: Refund, event_type: str) -> None:
    outbox_record_change(
        obj=refund,
        object_type="refund",
        event_type=event_type,
        payload=refund_representation(refund),
    )


def _emit_attempt(attempt: PaymentAttempt, intent: PaymentIntent) -> None:
    outbox_record(
        merchant_id=intent.merchant_id,
        livemode=intent.livemode,
        object_type="payment_attempt",
        object_id=attempt.public_id,
        event_type=f"payment_attempt.{attempt.outcome}",
        payload=attempt_representation(attempt),
    )
