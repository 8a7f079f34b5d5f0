"""Applies a normalized PSP notification (`WebhookEvent`) to intents, attempts and refunds.

Rules (architecture sections 4 and 7):
- Transitions only move forward, through the same helpers the synchronous path uses. A
  notification that agrees with what we already recorded, or that is older than it, changes
  nothing and is recorded as `ignored` with the reason.
- The synchronous path owns a decision while it is in flight: a notification for an attempt
  whose PSP answer is not stored yet (attempt `pending`, or a payment we cannot find by PSP
  reference yet) raises `NotificationNotApplicableYet`; the caller retries it with backoff
  (bounded, then dead-letter) and applies it once the answer is there. This keeps failover
  correct: a soft decline seen by webhook must not end a confirm that would fail over.
- An attempt whose outcome is `unknown` is resolved by the notification (as an inquiry would).
- Adyen's asynchronous modification results complete or fail the pending operation:
  CAPTURE/CANCELLATION arriving before the synchronous "received" was applied complete (or
  fail) the capture or cancel; REFUND success true/false succeeds or fails the pending refund.
- CAPTURE_FAILED (or CAPTURE success=false) after the optimistic capture: the capture is
  reverted. The intent goes back to `requires_capture` with the amount capturable again (the
  authorization still stands, so the merchant can capture again or cancel, and the expiry
  sweep voids it otherwise), `amount_received` back to 0, and a `payment_intent.capture_failed`
  event whose previous attributes say it was `succeeded`. The ledger follows in the same
  transaction: the capture's posted legs are negated (adjustment) and a new hold is opened for
  the amount. If refunds were already made against that capture it cannot be reverted safely:
  the intent is flagged `needs_review` instead.
- A notification contradicting a final state (PSP says authorized after we recorded a decline
  and perhaps failed over; a refund failing after it succeeded; a cancel refused after we
  canceled) is a `conflict`: recorded, the intent flagged `needs_review`, nothing reverted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from apps.core.audit import Actor, audit_record
from apps.events.notifications import (
    NotificationNotApplicableYet,
    NotificationOutcome,
    notification_handler_register,
)
from apps.intents import ledger_hooks
from apps.intents import services as intent_services
from apps.intents.models import IntentStatus, PaymentAttempt, PaymentIntent, Refund, RefundStatus
from apps.intents.services import common, confirm_apply, inquiries, operations
from apps.ledger import postings as ledger_postings
from apps.ledger import selectors as ledger_selectors
from apps.ledger import services as ledger
from apps.ledger.chart import Leg
from apps.psp_adapters.contract import Outcome, PSPResult, WebhookEvent
from apps.psp_adapters.decline_codes import is_hard

logger = logging.getLogger(__name__)
S = IntentStatus
A = PaymentAttempt.Outcome
ACTOR = Actor.system("psp_webhook")
DECLINED = {A.SOFT_DECLINE, A.HARD_DECLINE, A.ERROR}


def _applied(obj: str, reason: str, changes: list[dict]) -> NotificationOutcome:
    return NotificationOutcome("applied", reason, obj, changes)


def _ignored(obj: str, reason: str) -> NotificationOutcome:
    return NotificationOutcome("ignored", reason, obj)


def _conflict(intent_id: int, obj: str, reason: str) -> NotificationOutcome:
    PaymentIntent.objects.filter(pk=intent_id).update(needs_review=True)
    logger.error("psp notification conflicts with %s: %s", obj, reason)
    return NotificationOutcome(
        "conflict",
        reason,
        obj,
        [{"object": obj, "field": "needs_review", "from": None, "to": True}],
    )


# --------------------------------------------------------------------------- entry point


# --------------------------------------------------------------------------- lookups


def _find_attempt(connector_id: int, event: WebhookEvent) -> PaymentAttempt | None:
    attempts = PaymentAttempt.objects.filter(connector_id=connector_id)
    if event.attempt_id:
        attempt = attempts.filter(public_id=event.attempt_id).first()
        if attempt is not None:
            return attempt
    if event.psp_reference:
        return attempts.filter(psp_reference=event.psp_reference).order_by("-id").first()
    return None


def _require_attempt(connector_id: int, event: WebhookEvent) -> PaymentAttempt:
    attempt = _find_attempt(connector_id, event)
    if attempt is None:
        raise NotificationNotApplicableYet(
            f"no payment attempt matches {event.attempt_id or event.psp_reference!r} yet"
        )
    if attempt.outcome == A.PENDING:
        raise NotificationNotApplicableYet(
            f"the synchronous PSP answer for {attempt.public_id} is not stored yet"
        )
    return attempt


_TRACKED = (
    "status",
    "amount_capturable",
    "amount_received",
    "amount_refunded",
    "pending_operation",
)


def _snapshot(intent: PaymentIntent) -> dict:
    return {name: getattr(intent, name) for name in _TRACKED}


def _changes(obj: str, before: dict, after: dict) -> list[dict]:
    return [
        {"object": obj, "field": k, "from": before[k], "to": after[k]}
        for k in before
        if before[k] != after[k]
    ]


def _result_from(event: WebhookEvent) -> PSPResult:
    if event.success:
        outcome = Outcome.APPROVED
    else:
        outcome = Outcome.HARD_DECLINE if is_hard(event.decline_code) else Outcome.SOFT_DECLINE
    return PSPResult(
        outcome=outcome,
        psp_reference=event.psp_reference,
        decline_code=event.decline_code if not event.success else "",
        raw_code=event.raw_code,
        raw_message=f"PSP notification {event.psp_event_id}"[:500],
        amount=event.amount,
        # a signed AUTHORISATION success=false is the PSP's own word that nothing was charged
        not_charged=not event.success,
    )


# --------------------------------------------------------------------------- authorization


def _authorization(connector_id: int, event: WebhookEvent) -> NotificationOutcome:
    attempt = _require_attempt(connector_id, event)
    result = _result_from(event)
    if attempt.outcome == A.UNKNOWN:
        before = _snapshot(PaymentIntent.objects.get(pk=attempt.intent_id))
        attempt = inquiries._inquiry_apply(attempt_id=attempt.pk, result=result)
        intent = PaymentIntent.objects.get(pk=attempt.intent_id)
        return _applied(
            intent.public_id,
            "resolved an unknown outcome",
            _changes(intent.public_id, before, _snapshot(intent)),
        )
    with transaction.atomic():
        attempt = PaymentAttempt.objects.select_for_update().get(pk=attempt.pk)
        intent = common._lock_intent(attempt.intent_id)
        before = _snapshot(intent)
        if attempt.outcome == A.REQUIRES_ACTION:
            if intent.status != S.REQUIRES_ACTION:
                return _ignored(intent.public_id, f"stale: the intent is {intent.status}")
            _complete_action(intent, attempt, result)
            return _applied(
                intent.public_id,
                "completed customer authentication",
                _changes(intent.public_id, before, _snapshot(intent)),
            )
        if event.success and attempt.outcome == A.APPROVED:
            return _ignored(intent.public_id, "already applied: the attempt is approved")
        if not event.success and attempt.outcome in DECLINED:
            return _ignored(intent.public_id, f"already applied: the attempt is {attempt.outcome}")
        if event.success:
            return _conflict(
                intent.pk,
                intent.public_id,
                f"the PSP reports {attempt.public_id} authorized, but it was "
                f"recorded {attempt.outcome}",
            )
        return _ignored(
            intent.public_id,
            f"stale: {attempt.public_id} is {attempt.outcome}; a decline cannot undo it",
        )


def _complete_action(intent: PaymentIntent, attempt: PaymentAttempt, result: PSPResult) -> None:
    """3-D Secure finished at the PSP: the same steps as intent_refresh_action."""
    if result.outcome == Outcome.APPROVED:
        confirm_apply._record_result(attempt, result, A.APPROVED)
        confirm_apply._apply_authorized(intent, attempt, result)
        return
    confirm_apply._record_result(
        attempt,
        result,
        A.HARD_DECLINE if result.outcome == Outcome.HARD_DECLINE else A.SOFT_DECLINE,
    )
    intent.fail()
    intent.pending_operation = ""
    intent.next_action = None
    intent.last_payment_error = confirm_apply._payment_error(result, attempt)
    intent.save()
    common._emit(intent, "payment_intent.payment_failed", {"status": S.REQUIRES_ACTION})


# --------------------------------------------------------------------------- capture


def _capture(connector_id: int, event: WebhookEvent) -> NotificationOutcome:
    attempt = _require_attempt(connector_id, event)
    if attempt.outcome == A.UNKNOWN:
        raise NotificationNotApplicableYet(f"the authorization {attempt.public_id} is unknown")
    with transaction.atomic():
        intent = common._lock_intent(attempt.intent_id)
        before = _snapshot(intent)
        obj = intent.public_id
        capturing = intent.status == S.PROCESSING and intent.pending_operation == "capture"
        if intent.status == S.PROCESSING and not capturing:
            raise NotificationNotApplicableYet(f"{obj} is still being authorized")
        if event.success:
            if capturing:
                amount = (
                    event.amount
                    if event.amount and 0 < event.amount <= (intent.amount_capturable)
                    else intent.amount_capturable
                )
                previous = {"status": intent.status, "amount_capturable": intent.amount_capturable}
                intent.succeed()
                operations._end_operation(intent)
                intent.amount_received = amount
                intent.amount_capturable = 0
                intent.save()
                ledger_hooks.on_captured(intent=intent, amount=amount)
                common._emit(intent, "payment_intent.succeeded", previous)
                return _applied(obj, "capture confirmed", _changes(obj, before, _snapshot(intent)))
            if intent.status == S.SUCCEEDED:
                return _ignored(obj, "already applied: the intent is captured")
            if intent.status == S.REQUIRES_CAPTURE:
                return _conflict(intent.pk, obj, "the PSP reports a capture we did not apply")
            return _ignored(obj, f"stale: the intent is {intent.status}")
        if capturing:
            previous = {"status": intent.status}
            intent.capture_failed()
            operations._end_operation(intent)
            intent.save()
            common._emit(intent, "payment_intent.capture_failed", previous)
            return _applied(
                obj,
                f"capture failed at the PSP ({event.raw_code})",
                _changes(obj, before, _snapshot(intent)),
            )
        if intent.status == S.SUCCEEDED:
            return _revert_capture(intent, event, before)
        return _ignored(obj, f"already applied: the intent is {intent.status}")


def _revert_capture(
    intent: PaymentIntent, event: WebhookEvent, before: dict
) -> NotificationOutcome:
    """Adyen CAPTURE_FAILED after the optimistic capture (see the module docstring). There is
    no `succeeded -> requires_capture` transition in the graph: this is the one correction
    that needs it, done under the row lock with a guarded UPDATE."""
    obj = intent.public_id
    if intent.amount_refunded:
        return _conflict(
            intent.pk, obj, "the capture failed at the PSP after refunds were made against it"
        )
    previous = {
        "status": intent.status,
        "amount_received": intent.amount_received,
        "amount_capturable": intent.amount_capturable,
    }
    reverted = PaymentIntent.objects.filter(pk=intent.pk, status=S.SUCCEEDED).update(
        status=S.REQUIRES_CAPTURE,
        amount_capturable=intent.amount_received,
        amount_received=0,
        pending_operation="",
        pending_amount=None,
        pending_check_at=None,
        pending_inquiry_count=0,
    )
    if not reverted:
        return _ignored(obj, "the intent changed meanwhile")
    intent = common._lock_intent(intent.pk)
    _ledger_capture_failed(intent, amount=previous["amount_received"])
    common._emit(intent, "payment_intent.capture_failed", previous)
    audit_record(
        actor=ACTOR,
        action="payment_intent.capture_reverted",
        object_type="payment_intent",
        object_id=obj,
        merchant_id=intent.merchant_id,
        livemode=intent.livemode,
        changes={
            "status": ["succeeded", "requires_capture"],
            "amount_received": [previous["amount_received"], 0],
        },
    )
    logger.warning("capture of %s failed at the PSP after it was applied: reverted", obj)
    return _applied(
        obj,
        f"capture failed at the PSP ({event.raw_code}): reverted",
        _changes(obj, before, _snapshot(intent)),
    )


def _ledger_capture_failed(intent: PaymentIntent, *, amount: int) -> None:
    """Books what the revert means, in the same transaction: the capture's posted legs are
    negated (an adjustment: the receivable never arrives), and a new hold is opened for the
    amount, because the authorization still stands and will be captured again or voided."""
    source = intent.public_id
    capture = (
        ledger_selectors.journals_for_source(source_id=source, merchant_id=intent.merchant_id)
        .filter(kind="capture")
        .last()
    )
    if capture is None:
        return
    legs = [
        Leg(entry.account.code, -entry.amount)
        for entry in capture.entries.all()
        if entry.phase == "posted"
    ]
    common = {
        "metadata": {"payment_intent": source},
        "source_type": "payment_intent",
        "source_id": source,
    }
    ledger.ledger_post(
        merchant_id=intent.merchant_id,
        livemode=intent.livemode,
        currency=intent.currency,
        kind="adjustment",
        idempotency_key=f"{capture.public_id}:capture_failed",
        legs=legs,
        description="capture failed at the PSP",
        **common,
    )
    window = timedelta(days=intent.connector.authorization_window_days)
    hold = ledger.ledger_hold(
        merchant_id=intent.merchant_id,
        livemode=intent.livemode,
        currency=intent.currency,
        idempotency_key=f"{capture.public_id}:hold_again",
        legs=ledger_postings.authorization_legs(amount=amount),
        expires_at=(intent.authorized_at or timezone.now()) + window,
        **common,
    )
    PaymentIntent.objects.filter(pk=intent.pk).update(ledger_hold=hold.public_id)
    intent.ledger_hold = hold.public_id


# --------------------------------------------------------------------------- cancellation


def _cancellation(connector_id: int, event: WebhookEvent) -> NotificationOutcome:
    attempt = _require_attempt(connector_id, event)
    if attempt.outcome == A.UNKNOWN:
        raise NotificationNotApplicableYet(f"the authorization {attempt.public_id} is unknown")
    with transaction.atomic():
        intent = common._lock_intent(attempt.intent_id)
        before = _snapshot(intent)
        obj = intent.public_id
        if event.success:
            if intent.status == S.CANCELED:
                return _ignored(obj, "already applied: the intent is canceled")
            if intent.status in (S.REQUIRES_CAPTURE, S.REQUIRES_ACTION):
                was_authorized = intent.status == S.REQUIRES_CAPTURE
                # our own cancel in flight, or the PSP voided the authorization itself
                ours = intent.pending_operation == "cancel"
                operations._finish_cancel(
                    intent, intent.cancellation_reason if ours else "automatic", ACTOR
                )
                if was_authorized:
                    ledger_hooks.on_voided(intent=intent)
                return _applied(
                    obj,
                    "cancel confirmed" if ours else "canceled by the PSP",
                    _changes(obj, before, _snapshot(intent)),
                )
            if intent.status == S.PROCESSING:
                raise NotificationNotApplicableYet(f"an operation on {obj} is in flight")
            if intent.status == S.SUCCEEDED:
                return _conflict(intent.pk, obj, "the PSP reports a captured payment canceled")
            return _ignored(obj, f"stale: the intent is {intent.status}")
        if intent.pending_operation == "cancel" and intent.status != S.CANCELED:
            operations._end_operation(intent)
            intent.save()
            return _applied(
                obj,
                f"cancel refused by the PSP ({event.raw_code})",
                _changes(obj, before, _snapshot(intent)),
            )
        if intent.status == S.CANCELED:
            return _conflict(
                intent.pk,
                obj,
                "the PSP refused a cancellation already applied: the "
                "authorization may still hold funds",
            )
        return _ignored(obj, f"stale: the intent is {intent.status}")


# --------------------------------------------------------------------------- refunds


def _refund(connector_id: int, event: WebhookEvent) -> NotificationOutcome:
    if not event.refund_id:
        return _ignored(event.psp_reference, "not a refund made through the platform")
    refund = Refund.objects.filter(public_id=event.refund_id, connector_id=connector_id).first()
    if refund is None:
        raise NotificationNotApplicableYet(f"no refund {event.refund_id!r} yet")
    obj = refund.public_id
    if refund.status == RefundStatus.PENDING:
        before = refund.status
        refund = intent_services.refund_apply_result(
            refund_id=refund.pk,
            outcome=Outcome.APPROVED if event.success else Outcome.HARD_DECLINE,
            failure_reason=event.raw_code or "refund failed at the PSP",
        )
        changes = (
            []
            if refund.status == before
            else [{"object": obj, "field": "status", "from": before, "to": refund.status}]
        )
        return _applied(obj, "refund result", changes)
    if event.success == (refund.status == RefundStatus.SUCCEEDED):
        return _ignored(obj, f"already applied: the refund is {refund.status}")
    return _conflict(
        refund.intent_id,
        obj,
        f"the PSP reports the refund {'succeeded' if event.success else 'failed'}"
        f", but it was recorded {refund.status}",
    )


HANDLERS: dict[str, Callable[[int, WebhookEvent], NotificationOutcome]] = {
    "authorization": _authorization,
    "capture": _capture,
    "cancellation": _cancellation,
    "refund": _refund,
}


def notification_handlers_register() -> None:
    """Called by IntentsConfig.ready: events dispatches these types here."""
    for event_type, handler in HANDLERS.items():
        notification_handler_register(event_type, handler)
