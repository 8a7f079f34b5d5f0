"""Captures and cancels of an authorized payment, the sweep that resolves stalled ones, and the
expiry of old authorizations."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.connectors import gateway
from apps.core.audit import Actor, audit_record
from apps.core.errors import ConflictError, InvalidRequestError
from apps.core.money import validate_amount
from apps.intents import ledger_hooks, risk_step
from apps.intents.models import PaymentAttempt, PaymentIntent
from apps.intents.services.common import (
    CANCELLATION_REASONS,
    S,
    _emit,
    _lock_intent,
    _unexpected_state,
)
from apps.intents.services.refunds import refunds_inquire_due
from apps.psp_adapters.contract import (
    CancelRequest,
    CaptureRequest,
    Outcome,
    PSPResult,
)
from apps.vault import services as vault_services

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- capture and cancel
#
# A capture or a cancel is one PSP call between two transactions, like an authorization: tx A
# marks the operation in flight (`pending_operation`, its amount, when the sweep should look if
# no answer was applied by then), the PSP is called with the operation's own idempotency key,
# and tx B applies the answer. Whatever the answer, tx B leaves the intent in a state the API or
# the admin can move on from, and commits it before an error is raised to the caller. While an
# operation is in flight every other operation on the intent is refused (409), so a capture can
# never slip in while a cancel is on its way to the PSP. An answer that never came (process
# killed, lost response) is resolved by `intents_resolve_stalled_operations` (beat): it re-sends
# the operation with the same key, which the PSP answers from its idempotency store.


def _refuse_if_busy(intent: PaymentIntent, action: str) -> None:
    if intent.pending_operation:
        raise ConflictError(
            f"You cannot {action} this PaymentIntent while its {intent.pending_operation} is "
            "being processed; retry when it completes.",
            code="payment_intent_operation_in_progress",
            extra={
                "payment_intent_status": intent.status,
                "pending_operation": intent.pending_operation,
            },
        )


def _answer_due(connector) -> timedelta:
    """How long after a PSP call its answer must have been applied: the connector's own connect
    and read timeouts, plus a grace for tx B. Later, the process that sent it is gone."""
    return timedelta(
        milliseconds=connector.connect_timeout_ms + connector.read_timeout_ms,
        seconds=settings.PENDING_OPERATION_GRACE_SECONDS,
    )


def _begin_operation(intent: PaymentIntent, operation: str, amount: int | None = None) -> None:
    intent.pending_operation = operation
    intent.pending_amount = amount
    intent.pending_check_at = timezone.now() + _answer_due(intent.connector)
    intent.pending_inquiry_count = 0


def _end_operation(intent: PaymentIntent) -> None:
    intent.pending_operation = ""
    intent.pending_amount = None
    intent.pending_check_at = None
    intent.pending_inquiry_count = 0


def _operation_attempt(intent: PaymentIntent) -> PaymentAttempt | None:
    """The attempt whose authorization a capture or cancel acts on; its id keys the call."""
    return (
        intent.attempts.filter(
            outcome__in=[PaymentAttempt.Outcome.APPROVED, PaymentAttempt.Outcome.REQUIRES_ACTION]
        )
        .order_by("sequence")
        .last()
    )


def _psp_operation(intent: PaymentIntent, operation: str) -> PSPResult:
    """Sends the intent's in-flight capture or cancel to its PSP with the operation's key."""
    attempt = _operation_attempt(intent)
    if attempt is None or not intent.psp_reference:
        # nothing was authorized at a PSP (a cancel before 3DS began): nothing to void there
        return PSPResult(outcome=Outcome.APPROVED, raw_code="nothing_to_void")
    if operation == PaymentIntent.PendingOperation.CAPTURE:
        return gateway.capture(
            connector=intent.connector,
            request=CaptureRequest(
                psp_reference=intent.psp_reference,
                idempotency_key=f"{attempt.public_id}-capture",
                amount=intent.pending_amount,
                currency=intent.currency,
            ),
        )
    return gateway.cancel(
        connector=intent.connector,
        request=CancelRequest(
            psp_reference=intent.psp_reference, idempotency_key=f"{attempt.public_id}-cancel"
        ),
    )


def _still_unknown(intent: PaymentIntent, operation: str) -> None:
    """The PSP's answer to a capture or cancel is unknown: the sweep asks again later (with
    the same key, so nothing happens twice); ops are flagged once the schedule is used up."""
    schedule = settings.INQUIRY_BACKOFF_SECONDS
    count = intent.pending_inquiry_count
    intent.pending_check_at = timezone.now() + timedelta(
        seconds=schedule[min(count, len(schedule) - 1)]
    )
    intent.pending_inquiry_count = count + 1
    if intent.pending_inquiry_count >= len(schedule):
        intent.needs_review = True  # listed for ops in the admin; the sweep keeps asking
        logger.warning(
            "%s of %s still unknown after %s inquiries: needs review",
            operation,
            intent.public_id,
            intent.pending_inquiry_count,
        )
    intent.save()


def intent_capture(
    *, intent: PaymentIntent, actor: Actor, amount_to_capture: int | None = None
) -> PaymentIntent:
    if intent.connector_id:  # refused before any state change: EndpointRefused, nothing sent
        gateway.endpoint_check(intent.connector)
    with transaction.atomic():
        intent = _lock_intent(intent.pk)
        if intent.status != S.REQUIRES_CAPTURE:
            raise _unexpected_state(intent, "capture")
        _refuse_if_busy(intent, "capture")
        amount = (
            intent.amount_capturable
            if amount_to_capture is None
            else validate_amount(amount_to_capture, param="amount_to_capture")
        )
        if amount > intent.amount_capturable:
            raise InvalidRequestError(
                f"amount_to_capture ({amount}) is greater than amount_capturable "
                f"({intent.amount_capturable}).",
                code="amount_too_large",
                param="amount_to_capture",
            )
        intent.start_capture()
        _begin_operation(intent, PaymentIntent.PendingOperation.CAPTURE, amount)
        intent.save()
        audit_record(
            actor=actor,
            action="payment_intent.capture_requested",
            object_type="payment_intent",
            object_id=intent.public_id,
            merchant_id=intent.merchant_id,
            livemode=intent.livemode,
            changes={"amount_to_capture": [None, amount]},
        )
    result = _psp_operation(intent, PaymentIntent.PendingOperation.CAPTURE)
    intent, refusal = _capture_apply(intent_id=intent.pk, result=result)
    if refusal is not None:
        raise refusal  # after tx B committed the intent's new state
    return intent


def _capture_apply(
    *, intent_id: int, result: PSPResult
) -> tuple[PaymentIntent, ConflictError | None]:
    """tx B of a capture: applies the PSP's answer and commits it. Returns the intent and, when
    the PSP refused, the error for the caller to raise once the state is committed."""
    with transaction.atomic():
        intent = _lock_intent(intent_id)
        if intent.status != S.PROCESSING or intent.pending_operation != "capture":
            return intent, None  # a PSP notification or the sweep applied it first
        amount = intent.pending_amount or intent.amount_capturable
        previous = {"status": intent.status, "amount_capturable": intent.amount_capturable}
        if result.outcome in (Outcome.APPROVED, Outcome.PENDING):
            # Adyen answers "received" and confirms by webhook; a CAPTURE_FAILED notification
            # reverts it (psp_notifications). Captures practically always succeed once received.
            intent.succeed()
            _end_operation(intent)
            intent.amount_received = amount
            intent.amount_capturable = 0
            intent.save()
            ledger_hooks.on_captured(intent=intent, amount=amount)
            _emit(intent, "payment_intent.succeeded", previous)
            risk_step.moved_on(intent, "captured")
            return intent, None
        if result.outcome == Outcome.UNKNOWN:
            # the PSP may have captured: stays processing, the sweep re-sends with the same key
            _still_unknown(intent, "capture")
            return intent, None
        reason = result.raw_message or result.raw_code or result.decline_code or "refused"
        if result.psp_status == "canceled":
            # the PSP voided the authorization (it expired): nothing can be captured any more,
            # so the payment is canceled and its hold released, as the PSP's own record says
            intent.cancel()
            _end_operation(intent)
            intent.cancellation_reason = "automatic"
            intent.canceled_at = timezone.now()
            intent.amount_capturable = 0
            intent.save()
            ledger_hooks.on_voided(intent=intent, expired=True)
            _emit(intent, "payment_intent.canceled", previous)
            return intent, ConflictError(
                f"The PSP refused the capture ({reason}): the authorization is no longer valid "
                "and the PaymentIntent was canceled.",
                code="capture_failed",
                extra={"payment_intent_status": intent.status},
            )
        # refused, or not processed at all (503, connection refused): the authorization stands
        intent.capture_failed()
        _end_operation(intent)
        intent.save()
        _emit(intent, "payment_intent.capture_failed", previous)
        retry = " Nothing was captured; try again." if result.retryable_elsewhere else ""
        return intent, ConflictError(
            f"The PSP refused the capture: {reason}.{retry}",
            code="capture_failed",
            extra={"payment_intent_status": intent.status},
        )


def intent_cancel(
    *, intent: PaymentIntent, actor: Actor, cancellation_reason: str = ""
) -> PaymentIntent:
    if cancellation_reason and cancellation_reason not in CANCELLATION_REASONS:
        raise InvalidRequestError(
            f"cancellation_reason must be one of {', '.join(sorted(CANCELLATION_REASONS))}.",
            code="parameter_invalid",
            param="cancellation_reason",
        )
    if intent.connector_id:  # refused before any state change: EndpointRefused, nothing sent
        gateway.endpoint_check(intent.connector)
    with transaction.atomic():
        intent = _lock_intent(intent.pk)
        if intent.status not in (
            S.REQUIRES_PAYMENT_METHOD,
            S.REQUIRES_CONFIRMATION,
            S.REQUIRES_ACTION,
            S.REQUIRES_CAPTURE,
        ):
            raise _unexpected_state(intent, "cancel")
        _refuse_if_busy(intent, "cancel")
        needs_void = intent.status in (S.REQUIRES_CAPTURE, S.REQUIRES_ACTION)
        if not needs_void:
            _finish_cancel(intent, cancellation_reason, actor)
            return intent
        _begin_operation(intent, PaymentIntent.PendingOperation.CANCEL)
        intent.cancellation_reason = cancellation_reason  # applied when the PSP confirms
        intent.save()
    # void the authorization at the PSP before we call the intent canceled
    result = _psp_operation(intent, PaymentIntent.PendingOperation.CANCEL)
    intent, refusal = _cancel_apply(intent_id=intent.pk, result=result, actor=actor)
    if refusal is not None:
        raise refusal
    return intent


def _cancel_apply(
    *, intent_id: int, result: PSPResult, actor: Actor
) -> tuple[PaymentIntent, ConflictError | None]:
    """tx B of a cancel (see _capture_apply)."""
    with transaction.atomic():
        intent = _lock_intent(intent_id)
        if intent.pending_operation != "cancel" or intent.status not in (
            S.REQUIRES_CAPTURE,
            S.REQUIRES_ACTION,
        ):
            return intent, None  # a PSP notification or the sweep applied it first
        if result.outcome in (Outcome.APPROVED, Outcome.PENDING) or result.psp_status == "canceled":
            # voided now, or already voided at the PSP: either way nothing is held any more
            was_authorized = intent.status == S.REQUIRES_CAPTURE
            _finish_cancel(intent, intent.cancellation_reason, actor)
            if was_authorized:
                ledger_hooks.on_voided(
                    intent=intent, expired=intent.cancellation_reason == "expired"
                )
            return intent, None
        if result.outcome == Outcome.UNKNOWN:
            _still_unknown(intent, "cancel")
            return intent, ConflictError(
                "The PSP's answer to the cancellation did not arrive; it is being confirmed "
                "and payment_intent.canceled follows once the PSP has voided the payment.",
                code="cancel_pending",
                extra={"payment_intent_status": intent.status},
            )
        _end_operation(intent)
        intent.cancellation_reason = ""
        intent.save()
        reason = result.raw_message or result.raw_code or "refused"
        return intent, ConflictError(
            f"The PSP did not accept the cancellation ({reason}); try again.",
            code="cancel_failed",
            extra={"payment_intent_status": intent.status},
        )


def intents_resolve_stalled_operations(*, limit: int = 200) -> int:
    """Beat sweep: every capture or cancel whose answer was never applied (the process died
    between the PSP call and tx B, or the answer was lost) is re-sent with its own idempotency
    key, which the PSP answers from its idempotency store without acting twice, and the answer
    is applied as the synchronous path would. Authorizations left `pending` the same way become
    `unknown` and go to the attempt inquiries; refunds whose inquiry is due are asked
    (`refunds_inquire_due`)."""
    now = timezone.now()
    # at least the grace has passed for any pending attempt the sweep looks at; each is then
    # judged by its own connector's timeouts
    candidates = PaymentAttempt.objects.filter(
        outcome=PaymentAttempt.Outcome.PENDING,
        started_at__lte=now - timedelta(seconds=settings.PENDING_OPERATION_GRACE_SECONDS),
    ).select_related("connector")[:limit]
    overdue = [a.pk for a in candidates if a.started_at + _answer_due(a.connector) <= now]
    orphaned = PaymentAttempt.objects.filter(
        pk__in=overdue, outcome=PaymentAttempt.Outcome.PENDING
    ).update(outcome=PaymentAttempt.Outcome.UNKNOWN, next_inquiry_at=now, raw_code="no_answer")
    if orphaned:
        logger.warning("%s authorizations had no recorded answer: now inquired", orphaned)
    due = list(
        PaymentIntent.objects.filter(pending_check_at__lte=now)
        .order_by("pending_check_at")
        .values_list("pk", flat=True)[:limit]
    )
    for intent_id in due:
        intent_operation_inquire(intent_id=intent_id)
    # refunds are operations on a payment too: one whose answer was lost or whose process died
    # is asked here as well, so it never waits longer than this sweep's period past its due time
    refunds = refunds_inquire_due(limit=limit)
    return orphaned + len(due) + refunds


def intent_operation_inquire(*, intent_id: int) -> PaymentIntent:
    """Resolves one stalled capture or cancel (see intents_resolve_stalled_operations)."""
    intent = PaymentIntent.objects.select_related("connector").get(pk=intent_id)
    operation = intent.pending_operation
    if operation == PaymentIntent.PendingOperation.CAPTURE and intent.status == S.PROCESSING:
        result = _psp_operation(intent, operation)
        intent, _ = _capture_apply(intent_id=intent.pk, result=result)
    elif operation == PaymentIntent.PendingOperation.CANCEL:
        result = _psp_operation(intent, operation)
        intent, _ = _cancel_apply(
            intent_id=intent.pk, result=result, actor=Actor.system("stalled_operation_sweep")
        )
    else:
        # nothing in flight any more (an authorization is the attempts' business): stop looking
        PaymentIntent.objects.filter(pk=intent.pk, pending_operation=operation).update(
            pending_check_at=None
        )
    return intent


def _finish_cancel(intent: PaymentIntent, reason: str, actor: Actor) -> None:
    previous = {"status": intent.status}
    intent.cancel()
    intent.cancellation_reason = reason
    intent.canceled_at = timezone.now()
    _end_operation(intent)
    intent.amount_capturable = 0
    intent.next_action = None
    intent.save()
    if intent.payment_method_id:
        vault_services.vault_discard_cvc(payment_method=intent.payment_method)
    _emit(intent, "payment_intent.canceled", previous)
    risk_step.moved_on(intent, "canceled")
    audit_record(
        actor=actor,
        action="payment_intent.canceled",
        object_type="payment_intent",
        object_id=intent.public_id,
        merchant_id=intent.merchant_id,
        livemode=intent.livemode,
        changes={"status": [previous["status"], "canceled"]},
    )


def intents_expire_authorizations(*, now=None) -> int:
    """Beat task: cancels authorizations older than their connector's window, through the same
    cancel service (which voids at the PSP and releases the ledger hold)."""
    now = now or timezone.now()
    expired = 0
    candidates = PaymentIntent.objects.filter(status=S.REQUIRES_CAPTURE).select_related("connector")
    for intent in candidates.iterator():
        window = timedelta(days=intent.connector.authorization_window_days)
        if intent.authorized_at and intent.authorized_at + window <= now:
            try:
                intent_cancel(
                    intent=intent,
                    actor=Actor.system("authorization_expiry"),
                    cancellation_reason="expired",
                )
                expired += 1
            except (ConflictError, gateway.EndpointRefused):
                logger.warning("could not expire %s", intent.public_id)
    return expired
