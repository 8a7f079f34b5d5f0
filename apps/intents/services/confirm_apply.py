"""tx B of a confirm: the PSP's normalized answer applied to the attempt and the intent, the
failover step (apps/intents/failover_statement.py), an approval in one statement
(apps/intents/authorized_statement.py), and the explicit branches those statements do not
take."""

from __future__ import annotations

import copy
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.core.idempotency import idempotency_result_statement, idempotency_result_written
from apps.events.services import (
    outbox_insert_statement,
    outbox_relay_schedule,
)
from apps.intents import (
    authorized_statement,
    failover_statement,
    ledger_hooks,
    risk_step,
)
from apps.intents.models import PaymentAttempt, PaymentIntent
from apps.intents.representations import (
    attempt_representation,
    intent_representation,
)
from apps.intents.services.common import (
    S,
    _emit,
    _emit_attempt,
    _lock_attempt_and_intent,
)
from apps.psp_adapters.contract import (
    Outcome,
    PSPResult,
    RequestError,
)
from apps.psp_adapters.decline_codes import is_hard
from apps.risk import selectors as risk_selectors
from apps.routing import selectors as routing_selectors
from apps.vault import services as vault_services

if TYPE_CHECKING:
    pass

from apps.intents.services.confirm_plan import _PlannedAttempt, _route_next

logger = logging.getLogger(__name__)


_RESULT_FIELDS = (
    "outcome",
    "decline_code",
    "raw_code",
    "raw_message",
    "psp_reference",
    "http_status",
    "latency_ms",
    "completed_at",
    "three_d_secure",
    "retry",
)


def _record_result(attempt: PaymentAttempt, result: PSPResult, outcome: str) -> None:
    _set_result(attempt, result, outcome)
    attempt.save(update_fields=_RESULT_FIELDS)


def _set_result(attempt: PaymentAttempt, result: PSPResult, outcome: str) -> None:
    attempt.three_d_secure = _authentication_result(attempt, outcome)
    attempt.outcome = outcome
    attempt.decline_code = result.decline_code[:60]
    attempt.raw_code = result.raw_code[:100]
    attempt.raw_message = result.raw_message[:500]
    attempt.psp_reference = result.psp_reference or attempt.psp_reference
    attempt.http_status = result.http_status
    attempt.latency_ms = result.latency_ms
    attempt.completed_at = timezone.now()


def _authentication_result(attempt: PaymentAttempt, outcome: str) -> dict | None:
    """The attempt's SCA record with what came of it: `result` authenticated (the shopper
    passed 3-D Secure: liability shifts to the issuer), failed, exempted (an exemption was
    claimed and honoured: no shift), challenge_pending, or not_authenticated."""
    record = attempt.three_d_secure
    challenged = attempt.outcome == PaymentAttempt.Outcome.REQUIRES_ACTION
    if outcome == PaymentAttempt.Outcome.REQUIRES_ACTION:
        return {**(record or {"requested": "", "reason": "psp"}), "result": "challenge_pending"}
    if not record and not challenged:
        return record
    record = dict(record or {"requested": "", "reason": "psp"})
    if outcome == PaymentAttempt.Outcome.APPROVED:
        if challenged:
            record.update(result="authenticated", liability_shift=True)
        elif record.get("exemption"):
            record.update(result="exempted", liability_shift=False)
        else:
            record.update(result="not_authenticated", liability_shift=False)
    elif challenged:
        record.update(result="failed", liability_shift=False)
    return record


# Why a payment failed when the card was not the reason: the shopper must never read "your card
# was declined" for a request the PSP refused as malformed, credentials it refused, or an outage.
_NOT_THE_CARD = {
    RequestError.AUTHENTICATION: (
        "psp_authentication_failed",
        "The payment could not be processed: the payment provider refused the connector's "
        "credentials. The merchant's connector configuration needs attention.",
    ),
    RequestError.CONFIGURATION: (
        "connector_configuration_invalid",
        "The payment could not be processed: the connector is not configured with an endpoint "
        "the platform allows, so nothing was sent. The merchant's connector configuration needs "
        "attention.",
    ),
    RequestError.INVALID_REQUEST: (
        "psp_request_invalid",
        "The payment could not be processed: the payment provider refused the request as "
        "invalid. This is not a problem with the card.",
    ),
}
_PSP_UNAVAILABLE = (
    "psp_unavailable",
    "The payment could not be processed because no payment provider was available. Nothing "
    "was charged; try again shortly.",
)


def _payment_error(result: PSPResult, attempt: PaymentAttempt) -> dict:
    """The intent's last_payment_error for the attempt that ended the confirm. A decline is the
    card's (card_error, 402); an error before the PSP processed anything is ours, the
    merchant's setup or the PSP's availability (api_error), and is logged for ops."""
    common = {
        "payment_attempt": attempt.public_id,
        "connector": attempt.connector.public_id,
    }
    processed_failure = result.outcome == Outcome.ERROR and result.not_charged
    if result.outcome != Outcome.ERROR or (processed_failure and not result.request_error):
        # a decline, or a request the PSP processed and failed (Adyen "Error", Stripe's
        # processing_error): the issuer's or acquirer's answer about this card
        return {
            "type": "card_error",
            "code": "card_declined" if result.outcome != Outcome.ERROR else "processing_error",
            "decline_code": result.decline_code or "generic_decline",
            "message": "Your card was declined."
            if result.outcome != Outcome.ERROR
            else "An error occurred while processing your card. Try again in a little bit.",
            **common,
        }
    code, message = _NOT_THE_CARD.get(result.request_error, _PSP_UNAVAILABLE)
    if result.request_error in _NOT_THE_CARD:
        # a configuration problem, not a shopper's: every payment through this connector fails
        # the same way until someone fixes it
        logger.error(
            "psp refused the request: connector=%s attempt=%s http_status=%s raw_code=%s "
            "kind=%s: check the connector's configuration",
            attempt.connector.public_id,
            attempt.public_id,
            result.http_status,
            result.raw_code,
            result.request_error,
        )
    return {"type": "api_error", "code": code, "message": message, **common}


def _confirm_apply(
    *, attempt: PaymentAttempt, result: PSPResult, deadline: float, tried: frozenset[int]
) -> _PlannedAttempt | PaymentIntent | None:
    """tx B. Returns the next planned attempt when failing over, else the intent as saved, or
    None when someone else (a PSP notification, an inquiry, the stalled-operation sweep)
    applied this attempt's result first. `attempt`: as tx A saved it; a pending attempt changes
    only here, so its row is locked and its outcome checked, and the object is not read again.

    A decline or error that may fail over does so through the one failover step
    (`_fail_over`). When the step cannot take it, an explicit branch below says what happens:
    no connector is left, or the budgets are spent (the payment fails); the attempt was
    answered meanwhile (None); the intent is no longer processing this authorization as the
    step requires (the step builds nothing on it: the decline is recorded and the payment
    fails, so the intent is never left processing)."""
    failing = result.outcome in (Outcome.SOFT_DECLINE, Outcome.HARD_DECLINE, Outcome.ERROR)
    recorded = ""
    if failing:
        recorded, may_fail_over = _decline_disposition(attempt, attempt.intent, result, deadline)
        if may_fail_over and (attempt.retry or {}).get("decision") == "step_up_3ds":
            planned = _step_up_attempt(attempt, tried)
            if _fail_over(attempt, result, recorded, planned):
                return planned
        elif may_fail_over:
            planned = _route_next(attempt.intent, tried=tried, first=False, previous=attempt)
            if planned is not None and _fail_over(attempt, result, recorded, planned):
                return planned
            if planned is None and attempt.retry is not None:
                attempt.retry.update(retried=False, why_not="no_connector_left")
    with transaction.atomic():
        if result.outcome == Outcome.APPROVED:
            written = _authorized_at_once(attempt, result)
            if written is not None:
                return written[0]
        current, intent = _lock_attempt_and_intent(
            attempt.pk, payment_method=attempt.intent.payment_method
        )
        if current != PaymentAttempt.Outcome.PENDING:
            return None  # answered meanwhile: whoever did it applied the result
        outcome = result.outcome
        if outcome == Outcome.APPROVED:
            _record_result(attempt, result, PaymentAttempt.Outcome.APPROVED)
            _apply_authorized(intent, attempt, result)
        elif outcome == Outcome.REQUIRES_ACTION:
            _record_result(attempt, result, PaymentAttempt.Outcome.REQUIRES_ACTION)
            previous = {"status": intent.status}
            intent.require_action()
            intent.pending_operation = ""
            intent.next_action = result.next_action or {"type": "redirect_to_url"}
            intent.connector = attempt.connector
            intent.psp_reference = result.psp_reference
            intent.save()
            _emit(intent, "payment_intent.requires_action", previous)
        elif outcome in (Outcome.PENDING, Outcome.UNKNOWN):
            # the PSP may have charged: never fail over, resolve by inquiry with the same key
            _record_result(attempt, result, PaymentAttempt.Outcome.UNKNOWN)
            attempt.next_inquiry_at = timezone.now() + timedelta(
                seconds=settings.INQUIRY_BACKOFF_SECONDS[0]
            )
            attempt.save()
            intent.connector = attempt.connector
            intent.save()
            _schedule_inquiry(attempt)
        else:
            # no failover: a hard decline, the budgets spent, no connector left, or an intent
            # the failover step would not build on; the payment fails here
            _record_result(attempt, result, recorded)
            _emit_attempt(attempt, intent)
            if intent.status in (S.PROCESSING, S.REQUIRES_ACTION):
                previous = {"status": intent.status}
                intent.fail()
                intent.pending_operation = ""
                intent.next_action = None
                intent.last_payment_error = _payment_error(result, attempt)
                intent.save()
                if result.outcome == Outcome.ERROR:
                    vault_services.vault_discard_cvc(payment_method=intent.payment_method)
                _emit(intent, "payment_intent.payment_failed", previous)
                if result.outcome != Outcome.ERROR:
                    # the CVC's discard rides in the velocity counters' round trip
                    risk_step.declined(intent, discard_cvc=True)
        return intent


def _decline_disposition(
    attempt: PaymentAttempt, intent: PaymentIntent, result: PSPResult, deadline: float
) -> tuple[str, bool]:
    """For a decline or error: the attempt's recorded outcome, and whether the confirm may fail
    over (soft, or an error before the PSP processed anything; within the merchant's attempt
    and time budgets). Reads only what cannot change while the attempt is pending."""
    outcome = result.outcome
    hard = outcome == Outcome.HARD_DECLINE or (
        outcome == Outcome.SOFT_DECLINE and is_hard(result.decline_code)
    )
    if outcome != Outcome.ERROR:
        # smart retries: the decline-handling table and the networks' rules decide, and the
        # attempt records why (shown in its routing trace)
        pm = intent.payment_method
        attempt.retry = risk_selectors.decline_decision(
            connector_type=attempt.connector.connector_type,
            decline_code=result.decline_code,
            raw_code=result.raw_code,
            network_advice_code=result.network_advice_code,
            card_brand=getattr(pm, "brand", ""),
            declines_per_card_daily=((intent.risk_outcome or {}).get("signals") or {}).get(
                "declines_per_card_daily", 0
            ),
            three_ds_requested=bool((attempt.three_d_secure or {}).get("requested")),
        )
        hard = attempt.retry["decision"] == "do_not_retry"
    recorded = {Outcome.ERROR: PaymentAttempt.Outcome.ERROR}.get(
        outcome,
        PaymentAttempt.Outcome.HARD_DECLINE if hard else PaymentAttempt.Outcome.SOFT_DECLINE,
    )
    # per-merchant bounds (routing settings, else the platform's); intent_confirm's deadline is
    # its start plus the platform budget, so the start is recovered here
    limits = routing_selectors.confirm_limits(
        merchant_id=intent.merchant_id, livemode=intent.livemode
    )
    confirm_started = deadline - settings.CONFIRM_TIME_BUDGET_SECONDS
    attempts_this_confirm = (attempt.routing_trace or {}).get("confirm_attempt", attempt.sequence)
    may_fail_over = (
        not hard
        and (
            outcome != Outcome.ERROR
            or result.retryable_elsewhere
            or result.http_status is None
            or result.http_status < 500
        )
        and attempts_this_confirm < limits.max_attempts
        and time.monotonic() < confirm_started + limits.time_budget_seconds
    )
    if attempt.retry is not None:
        attempt.retry["retried"] = may_fail_over
        if not may_fail_over and not hard:
            attempt.retry["why_not"] = "budget_spent"
    return recorded, may_fail_over


def _step_up_attempt(failed: PaymentAttempt, tried: frozenset[int]) -> _PlannedAttempt:
    """Step-up after `authentication_required` on an attempt without 3-D Secure: once, on the
    same connector, with 3DS requested, as a new attempt (its own PSP key)."""
    from apps.core.ids import new_public_id

    public_id = new_public_id("pa")
    trace = dict(failed.routing_trace or {})
    trace["confirm_attempt"] = trace.get("confirm_attempt", failed.sequence) + 1
    trace["step_up"] = {"after": failed.public_id, "decline_code": failed.decline_code}
    attempt = PaymentAttempt(
        public_id=public_id,
        intent=failed.intent,
        sequence=failed.sequence + 1,
        connector=failed.connector,
        amount=failed.amount,
        currency=failed.currency,
        routing_trace=trace,
        psp_idempotency_key=f"{public_id}-authorize",
        risk_outcome=failed.risk_outcome,
        three_d_secure={
            **(failed.three_d_secure or {}),
            "requested": "any",
            "reason": "step_up",
            "exemption": "",
        },
    )
    return _PlannedAttempt(attempt=attempt, tried=tried)


def _fail_over(
    failed: PaymentAttempt, result: PSPResult, recorded: str, planned: _PlannedAttempt
) -> bool:
    """The failover step, in one SQL statement (apps/intents/failover_statement.py): lock the
    failed attempt (still pending) and then the intent (still processing this authorization,
    nothing else set), record the attempt's result, write its outbox row and insert the next
    attempt, planned by routing just before (routing reads only the process's compiled routing
    and what cannot change while the attempt is pending). It sits between one PSP's answer and
    the next PSP's request, so it costs one round trip and no ORM work. False when a condition
    did not hold and nothing was written: tx B's explicit branches decide."""
    intent = failed.intent
    _set_result(failed, result, recorded)
    event = outbox_insert_statement(
        when="failed",
        merchant_id=intent.merchant_id,
        livemode=intent.livemode,
        object_type="payment_attempt",
        object_id=failed.public_id,
        event_type=f"payment_attempt.{failed.outcome}",
        payload=attempt_representation(failed),
    )
    attempt_id = failover_statement.fail_over(
        failed=failed, result_fields=_RESULT_FIELDS, event=event, next_attempt=planned.attempt
    )
    if attempt_id is None:
        return False
    planned.attempt.pk = attempt_id
    planned.attempt._state.adding = False  # saved, as if by the ORM
    planned.attempt._state.db = connection.alias
    planned.relay_owed = True
    return True


def _apply_authorized(intent: PaymentIntent, attempt: PaymentAttempt, result: PSPResult) -> None:
    """The general path (tx B's ORM branch, with both rows locked)."""
    previous = _authorize_in_memory(intent, attempt, result)
    intent.save()
    _emit(intent, _authorized_event(intent), previous)
    _after_authorized(intent, attempt)


def _authorized_at_once(
    attempt: PaymentAttempt, result: PSPResult
) -> tuple[PaymentIntent, PaymentAttempt] | None:
    """tx B of an approved authorization in one statement (apps/intents/authorized_statement.py)
    instead of the general path's lock, attempt, intent and outbox statements: the same
    in-memory changes (`_authorize_in_memory`), written at once if the attempt is still pending
    and the intent still authorizing in a state its transition may leave. Works on copies, so
    that None (a condition did not hold, nothing written) leaves the general path below to
    decide from the rows as they are."""
    intent, attempt = copy.copy(attempt.intent), copy.copy(attempt)
    attempt.intent = intent
    allowed = authorized_statement.allowed_from(
        PaymentIntent.succeed if _captures_at_once(intent) else PaymentIntent.authorize
    )
    _set_result(attempt, result, PaymentAttempt.Outcome.APPROVED)
    previous = _authorize_in_memory(intent, attempt, result)
    event = outbox_insert_statement(
        when="authorized",
        merchant_id=intent.merchant_id,
        livemode=intent.livemode,
        object_type="payment_intent",
        object_id=intent.public_id,
        event_type=_authorized_event(intent),
        payload=intent_representation(intent),
        previous_attributes=previous,
    )
    written_with = [event]
    cvc = vault_services.vault_discard_cvc_statement(
        payment_method=intent.payment_method, when="authorized"
    )
    if cvc is not None:
        written_with.append(cvc)
    # the request's stored answer, when it is this intent (the idempotency key's result commits
    # with the state it shows)
    result = idempotency_result_statement(intent, when="authorized")
    if result is not None:
        written_with.append(result)
    if not authorized_statement.apply_authorized(
        attempt=attempt,
        attempt_fields=_RESULT_FIELDS,
        intent=intent,
        allowed=allowed,
        written_with=written_with,
    ):
        return None
    intent._update_initial_state()  # saved: the optimistic check starts from here
    outbox_relay_schedule()
    if result is not None:
        idempotency_result_written()
    _after_authorized(intent, attempt, cvc_recorded_at=cvc[1][0] if cvc else None)
    return intent, attempt


def _captures_at_once(intent: PaymentIntent) -> bool:
    return intent.capture_method == PaymentIntent.CaptureMethod.AUTOMATIC


def _authorize_in_memory(intent: PaymentIntent, attempt: PaymentAttempt, result: PSPResult) -> dict:
    """The approval's changes to the intent, not written; returns its previous attributes."""
    previous = {"status": intent.status, "amount_capturable": intent.amount_capturable}
    intent.connector = attempt.connector
    intent.psp_reference = result.psp_reference or attempt.psp_reference
    intent.pending_operation = ""
    intent.next_action = None
    intent.authorized_at = timezone.now()
    if _captures_at_once(intent):
        intent.succeed()
        intent.amount_received = intent.amount
        intent.amount_capturable = 0
    else:
        intent.authorize()
        intent.amount_capturable = intent.amount
    return previous


def _authorized_event(intent: PaymentIntent) -> str:
    if _captures_at_once(intent):
        return "payment_intent.succeeded"
    return "payment_intent.amount_capturable_updated"


def _after_authorized(
    intent: PaymentIntent, attempt: PaymentAttempt, *, cvc_recorded_at=None
) -> None:
    """In tx B, the approval written: the CVC is spent (its discard recorded already at
    `cvc_recorded_at`, by tx B's statement), the ledger posts, Radar's review queue takes a
    payment it held for review."""
    if cvc_recorded_at is not None:
        vault_services.vault_discard_cvc_recorded(
            payment_method=intent.payment_method, at=cvc_recorded_at
        )
    else:
        vault_services.vault_discard_cvc(payment_method=intent.payment_method)
    if _captures_at_once(intent):
        ledger_hooks.on_captured(intent=intent, amount=intent.amount)
    else:
        ledger_hooks.on_authorized(intent=intent, attempt=attempt)
        risk_step.authorized(intent)


def _schedule_inquiry(attempt: PaymentAttempt) -> None:
    from apps.intents.tasks import inquire_attempt

    countdown = settings.INQUIRY_BACKOFF_SECONDS[
        min(attempt.inquiry_count, len(settings.INQUIRY_BACKOFF_SECONDS) - 1)
    ]

    def send() -> None:
        try:
            # no publish retries: the payment has committed and its answer must not wait for or
            # fail with the broker; the inquiry sweep runs every attempt past next_inquiry_at
            inquire_attempt.apply_async((attempt.pk,), countdown=countdown, retry=False)
        except Exception:
            logger.warning("could not enqueue the inquiry of %s; the sweep runs it", attempt.pk)

    transaction.on_commit(send)
