"""Refunds: reserved on the intent first (a CHECK makes over-refunds impossible even under
races), then sent to the PSP with the refund's own key, and applied only forward."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from apps.connectors import gateway
from apps.core.audit import Actor, audit_record
from apps.core.errors import ConflictError, InvalidRequestError
from apps.core.money import validate_amount
from apps.intents import ledger_hooks
from apps.intents.models import Refund, RefundStatus
from apps.intents.selectors import intent_get
from apps.intents.services.common import (
    REFUND_REASONS,
    _emit,
    _emit_refund,
    _lock_intent,
)
from apps.psp_adapters.contract import (
    Outcome,
    RefundRequest,
)

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


def refund_create(
    *,
    merchant,
    livemode: bool,
    payment_intent: str,
    actor: Actor,
    amount: int | None = None,
    reason: str = "",
    metadata: dict | None = None,
) -> Refund:
    if reason and reason not in REFUND_REASONS:
        raise InvalidRequestError(
            f"reason must be one of {', '.join(sorted(REFUND_REASONS))}.",
            code="parameter_invalid",
            param="reason",
        )
    intent = intent_get(
        merchant_id=merchant.id, livemode=livemode, public_id=payment_intent, param="payment_intent"
    )
    with transaction.atomic():
        intent = _lock_intent(intent.pk)
        if intent.amount_received == 0:
            raise ConflictError(
                f"This PaymentIntent has no captured funds to refund (status {intent.status}).",
                code="charge_not_captured",
                param="payment_intent",
                extra={"payment_intent_status": intent.status},
            )
        if intent.disputed:
            # the PSP decides the money now; a refund on top could pay the shopper twice
            raise ConflictError(
                "This PaymentIntent has an open dispute; it cannot be refunded until the "
                "dispute is closed.",
                code="charge_disputed",
                param="payment_intent",
                extra={"payment_intent_status": intent.status},
            )
        remaining = intent.amount_received - intent.amount_refunded - intent.amount_disputed
        if remaining <= 0:
            # without an amount the refund would be the remaining 0, which the table refuses
            raise ConflictError(
                "This PaymentIntent has already been fully refunded.",
                code="charge_already_refunded",
                param="payment_intent",
                extra={"payment_intent_status": intent.status},
            )
        refund_amount = remaining if amount is None else validate_amount(amount)
        if refund_amount > remaining:
            raise InvalidRequestError(
                f"Refund amount ({refund_amount}) is greater than the unrefunded amount "
                f"({remaining}).",
                code="amount_too_large",
                param="amount",
            )
        # reserve the amount on the intent now; the CHECK refunded <= received makes two racing
        # refunds that together exceed the received amount impossible even if this check raced
        intent.amount_refunded += refund_amount
        intent.save()
        refund = Refund(
            intent=intent,
            merchant_id=intent.merchant_id,
            livemode=livemode,
            amount=refund_amount,
            currency=intent.currency,
            reason=reason,
            connector=intent.connector,
            metadata=metadata or {},
        )
        refund.save()
        refund.psp_idempotency_key = f"{refund.public_id}-refund"
        refund.save(update_fields=["psp_idempotency_key"])
        _emit_refund(refund, "refund.created")
        audit_record(
            actor=actor,
            action="refund.created",
            object_type="refund",
            object_id=refund.public_id,
            merchant_id=merchant.id,
            livemode=livemode,
            changes={"amount": [None, refund_amount]},
        )
    return refund_submit(refund_id=refund.pk)


def refund_submit(*, refund_id: int) -> Refund:
    """Sends (or re-sends, with the same key) a pending refund to the PSP and applies the result."""
    refund = Refund.objects.select_related("intent", "connector").get(pk=refund_id)
    if refund.status != RefundStatus.PENDING:
        return refund
    result = gateway.refund(
        connector=refund.connector,
        request=RefundRequest(
            psp_reference=refund.intent.psp_reference,
            idempotency_key=refund.psp_idempotency_key,
            refund_id=refund.public_id,
            amount=refund.amount,
            currency=refund.currency,
            reason=refund.reason,
        ),
    )
    return refund_apply_result(
        refund_id=refund.pk,
        outcome=result.outcome,
        psp_reference=result.psp_reference,
        failure_reason=result.raw_message or result.decline_code,
    )


def refund_apply_result(
    *, refund_id: int, outcome: Outcome, psp_reference: str = "", failure_reason: str = ""
) -> Refund:
    """Applies a PSP answer (synchronous or from a webhook) to a refund. Only moves forward."""
    with transaction.atomic():
        refund = (
            Refund.objects.select_for_update(of=("self",))
            .select_related("intent")
            .get(pk=refund_id)
        )
        intent = _lock_intent(refund.intent_id)
        if psp_reference and not refund.psp_reference:
            refund.psp_reference = psp_reference
        if refund.status != RefundStatus.PENDING:
            return refund
        if outcome == Outcome.APPROVED:
            refund.succeed()
            refund.save()
            already = sum(
                intent.refunds.filter(status=RefundStatus.SUCCEEDED)
                .exclude(pk=refund.pk)
                .values_list("amount", flat=True)
            )
            ledger_hooks.on_refunded(intent=intent, refund=refund, previously_refunded=already)
            _emit_refund(refund, "refund.succeeded")
            _emit(intent, "payment_intent.refunded")
        elif outcome in (Outcome.SOFT_DECLINE, Outcome.HARD_DECLINE, Outcome.ERROR):
            refund.fail()
            refund.failure_reason = failure_reason[:200]
            refund.save()
            intent.amount_refunded -= refund.amount  # release the reservation
            intent.save()
            _emit_refund(refund, "refund.failed")
        else:
            # pending at the PSP (Adyen confirms by webhook) or unknown: re-sent later with
            # the same idempotency key by the sweep
            refund.inquiry_count += 1
            refund.save()
        return refund


def refunds_resubmit_pending(*, older_than_seconds: int = 60, limit: int = 200) -> int:
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    pending = list(
        Refund.objects.filter(
            status=RefundStatus.PENDING, updated_at__lte=cutoff, inquiry_count__lt=20
        ).values_list("pk", flat=True)[:limit]
    )
    for refund_id in pending:
        refund_submit(refund_id=refund_id)
    return len(pending)
