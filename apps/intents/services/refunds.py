"""Refunds: reserved on the intent first (a CHECK makes over-refunds impossible even under
races), then sent to the PSP with the refund's own key, and applied only forward."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.connectors import gateway
from apps.core.audit import Actor, audit_record
from apps.core.errors import ConflictError, InvalidRequestError
from apps.core.money import validate_amount
from apps.intents import ledger_hooks
from apps.intents.models import PaymentIntent, Refund, RefundStatus
from apps.intents.selectors import intent_get
from apps.intents.services.common import (
    REFUND_REASONS,
    _emit,
    _emit_refund,
    _lock_intent,
)
from apps.psp_adapters.contract import (
    Outcome,
    PSPResult,
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
        # asked by the sweep if no answer is applied by then (the process may die mid-call)
        refund.next_inquiry_at = timezone.now() + _answer_due(intent.connector)
        refund.save(update_fields=["psp_idempotency_key", "next_inquiry_at"])
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
    """Sends a new pending refund to the PSP (the first and only send from here; later ones are
    inquiries, `refund_inquire`) and applies the result."""
    refund = Refund.objects.select_related("intent", "connector").get(pk=refund_id)
    if refund.status != RefundStatus.PENDING:
        return refund
    result = gateway.refund(connector=refund.connector, request=_refund_request(refund))
    return refund_apply_result(
        refund_id=refund.pk,
        outcome=result.outcome,
        psp_reference=_refund_reference(result),
        failure_reason=result.raw_message or result.decline_code or result.raw_code,
        first_send=True,
    )


def _refund_reference(result: PSPResult) -> str:
    """The PSP's id of the refund, from an answer that is about the refund itself (an error's
    reference is the payment's, which a later lookup of the refund would not find)."""
    if result.outcome in (Outcome.APPROVED, Outcome.PENDING, Outcome.HARD_DECLINE):
        return result.psp_reference
    return ""


def _refund_request(refund: Refund) -> RefundRequest:
    return RefundRequest(
        psp_reference=refund.intent.psp_reference,
        idempotency_key=refund.psp_idempotency_key,
        refund_id=refund.public_id,
        amount=refund.amount,
        currency=refund.currency,
        reason=refund.reason,
        refund_psp_reference=refund.psp_reference,
    )


def _answer_due(connector) -> timedelta:
    """When a refund sent now must have had its answer applied (the connector's own timeouts
    and the stalled-operation grace, as for captures); later its process is gone."""
    return timedelta(
        milliseconds=connector.connect_timeout_ms + connector.read_timeout_ms,
        seconds=settings.PENDING_OPERATION_GRACE_SECONDS,
    )


def refund_apply_result(
    *,
    refund_id: int,
    outcome: Outcome,
    psp_reference: str = "",
    failure_reason: str = "",
    first_send: bool = False,
    not_refunded: bool = False,
) -> Refund:
    """Applies a PSP answer (synchronous, an inquiry's or a notification's) to a refund. Only
    moves forward. ERROR (the PSP did not process the request: 503, 4xx, nothing sent) fails the
    refund only on its first send; on an inquiry the first send may have been processed, so it
    proves nothing. `not_refunded`: the PSP's own lookup says it has no such refund."""
    with transaction.atomic():
        refund = (
            Refund.objects.select_for_update(of=("self",))
            .select_related("intent")
            .get(pk=refund_id)
        )
        intent = _lock_intent(refund.intent_id)
        psp_reference_was = refund.psp_reference
        if psp_reference and not refund.psp_reference:
            refund.psp_reference = psp_reference
        if refund.status != RefundStatus.PENDING:
            if refund.next_inquiry_at is not None or refund.psp_reference != psp_reference_was:
                refund.next_inquiry_at = None
                refund.save()
            return refund
        refused = outcome in (Outcome.SOFT_DECLINE, Outcome.HARD_DECLINE)
        if outcome == Outcome.APPROVED:
            refund.succeed()
            refund.next_inquiry_at = None
            refund.save()
            already = sum(
                intent.refunds.filter(status=RefundStatus.SUCCEEDED)
                .exclude(pk=refund.pk)
                .values_list("amount", flat=True)
            )
            ledger_hooks.on_refunded(intent=intent, refund=refund, previously_refunded=already)
            _emit_refund(refund, "refund.succeeded")
            _emit(intent, "payment_intent.refunded")
        elif refused or not_refunded or (outcome == Outcome.ERROR and first_send):
            refund.fail()
            refund.next_inquiry_at = None
            refund.failure_reason = failure_reason[:200]
            refund.save()
            intent.amount_refunded -= refund.amount  # release the reservation
            intent.save()
            _emit_refund(refund, "refund.failed")
        else:
            # pending at the PSP (Adyen confirms by notification), unknown (the answer was lost),
            # or an inquiry that learnt nothing: asked again on the inquiry schedule
            _schedule_refund_inquiry(refund, acknowledged=outcome == Outcome.PENDING)
            refund.save()
        return refund


def _schedule_refund_inquiry(refund: Refund, *, acknowledged: bool) -> None:
    """The next inquiry of a pending refund: INQUIRY_BACKOFF_SECONDS after this answer (5 s,
    30 s, 2 min, … then daily), as a task and, should the broker lose it, by the sweep. A refund
    the PSP acknowledged (Adyen's `received`, Stripe's `pending`) has its outcome notified within
    seconds, so its first inquiry waits for the second step. Once the schedule is used up the
    payment is flagged for ops, and the refund is still asked daily."""
    schedule = settings.INQUIRY_BACKOFF_SECONDS
    step = max(refund.inquiry_count, 1) if acknowledged else refund.inquiry_count
    delay = schedule[min(step, len(schedule) - 1)]
    refund.inquiry_count = min(refund.inquiry_count + 1, 32767)
    refund.next_inquiry_at = timezone.now() + timedelta(seconds=delay)
    if refund.inquiry_count == len(schedule):
        PaymentIntent.objects.filter(pk=refund.intent_id).update(needs_review=True)
        logger.warning(
            "refund %s still pending after %s inquiries: needs review",
            refund.public_id,
            refund.inquiry_count,
        )
    refund_pk = refund.pk

    def send() -> None:
        from apps.intents.tasks import inquire_refund

        try:
            # no publish retries: the sweep runs every refund past next_inquiry_at
            inquire_refund.apply_async((refund_pk,), countdown=delay, retry=False)
        except Exception:
            logger.warning(
                "could not enqueue the inquiry of refund %s; the sweep runs it", refund_pk
            )

    transaction.on_commit(send)


def refund_inquire(*, refund_id: int) -> Refund:
    """Asks the PSP what happened to a pending refund whose inquiry is due, and applies the
    answer (`gateway.refund_inquire`: a lookup, or the re-send with the refund's own key while
    the PSP keeps it; never a second refund). The refund is claimed first, so the task and the
    sweep never ask twice at once."""
    now = timezone.now()
    refund = Refund.objects.select_related("intent", "connector").get(pk=refund_id)
    due = Q(next_inquiry_at__lte=now + timedelta(seconds=1)) | Q(
        next_inquiry_at__isnull=True,
        updated_at__lte=now - timedelta(seconds=settings.PENDING_OPERATION_GRACE_SECONDS),
    )
    claimed = Refund.objects.filter(due, pk=refund.pk, status=RefundStatus.PENDING).update(
        next_inquiry_at=now + _answer_due(refund.connector)
    )
    if not claimed:
        return refund
    result = gateway.refund_inquire(
        connector=refund.connector,
        request=_refund_request(refund),
        refund_age_seconds=(now - refund.created_at).total_seconds(),
    )
    return refund_apply_result(
        refund_id=refund.pk,
        outcome=result.outcome,
        psp_reference=_refund_reference(result),
        failure_reason=result.raw_message or result.decline_code or result.raw_code,
        not_refunded=result.outcome == Outcome.UNKNOWN and result.not_charged,
    )


def refunds_inquire_due(*, limit: int = 200) -> int:
    """Sweep (beat): every pending refund whose inquiry is due, including one whose process died
    before its answer was applied (due from tx A on) and, should one have none, any pending
    refund untouched for longer than the grace. One failure does not stop the others."""
    now = timezone.now()
    grace = timedelta(seconds=settings.PENDING_OPERATION_GRACE_SECONDS)
    due = list(
        Refund.objects.filter(
            Q(next_inquiry_at__lte=now)
            | Q(next_inquiry_at__isnull=True, updated_at__lte=now - grace),
            status=RefundStatus.PENDING,
        )
        .order_by(F("next_inquiry_at").asc(nulls_first=True), "pk")
        .values_list("pk", flat=True)[:limit]
    )
    for refund_id in due:
        try:
            refund_inquire(refund_id=refund_id)
        except Exception:
            logger.exception("the inquiry of refund %s failed; asked again later", refund_id)
    return len(due)


def refunds_resubmit_pending(*, limit: int = 200) -> int:
    """The former 're-send pending refunds' beat entry (kept for existing schedules)."""
    return refunds_inquire_due(limit=limit)
