"""Confirming a payment intent: routing, the authorization at the PSP, failover, the result.

Every PSP call follows the same shape (architecture section 4): tx A locks the intent, checks
the state, records the attempt and moves to `processing`; the PSP is called outside any
transaction (through the connector gateway); tx B locks again and applies the normalized
result. A row lock is never held across a PSP call, and every state change writes an outbox row
in its own transaction. Failover has one implementation, one SQL statement
(apps/intents/failover_statement.py); the cases it cannot take are explicit branches of tx B."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.connectors import gateway
from apps.core import metrics, tracing
from apps.core.audit import Actor, audit_entry, audit_insert_statement, audit_record_all
from apps.core.errors import InvalidRequestError, PlatformError
from apps.core.idempotency import idempotency_result_statement, idempotency_result_written
from apps.events.services import (
    outbox_insert_statement,
    outbox_new_object_statement,
    outbox_relay_schedule,
)
from apps.intents import (
    authorized_statement,
    created_statement,
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
    _lock_intent,
    _unexpected_state,
)
from apps.intents.services.create import NewIntentRecords, intent_created, intent_insert
from apps.psp_adapters.contract import (
    AuthorizeRequest,
    CardData,
    Outcome,
    PSPResult,
    RequestError,
)
from apps.psp_adapters.decline_codes import DECLINE_CLASSES, is_hard
from apps.risk import selectors as risk_selectors
from apps.routing import selectors as routing_selectors
from apps.vault import selectors as vault_selectors
from apps.vault import services as vault_services

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


@dataclass
class _PlannedAttempt:
    # the attempt as tx A saved it, with its intent (payment method loaded) and connector: the
    # PSP call needs nothing more, so nothing is read again between tx A and the call
    attempt: PaymentAttempt
    # connectors of every attempt of the intent so far, this one included: failover excludes
    # them without asking the database again
    tried: frozenset[int]
    # its outbox rows were written by a single statement (no on-commit hook): the caller
    # enqueues the relay, after the PSP call rather than before it
    relay_owed: bool = False


def intent_confirm(
    *,
    intent: PaymentIntent,
    actor: Actor,
    payment_method: str | None = None,
    client_ip: str = "",
    merchant_country: str = "",
) -> PaymentIntent:
    """Authorizes through the route, failing over on soft declines and pre-processing errors,
    within the merchant's attempt and time budgets. Returns the intent in its resulting state.
    `client_ip`, `merchant_country`: Radar's signals the intent does not hold (apps/risk)."""
    if intent.status == S.REQUIRES_ACTION and payment_method is None:
        from apps.intents.services.inquiries import intent_refresh_action

        return intent_refresh_action(intent=intent, actor=actor)
    with tracing.span("pp.confirm", intent=intent.public_id, livemode=intent.livemode):
        deadline = time.monotonic() + settings.CONFIRM_TIME_BUDGET_SECONDS
        with tracing.span("pp.tx_a", intent=intent.public_id):
            planned = _confirm_begin(
                intent=intent,
                actor=actor,
                payment_method=payment_method,
                radar={"client_ip": client_ip, "merchant_country": merchant_country},
            )
        return _confirm_run(intent, planned, deadline)


def _confirm_run(
    intent: PaymentIntent, planned: _PlannedAttempt | PaymentIntent, deadline: float
) -> PaymentIntent:
    """After tx A: the PSP call, tx B, and each failover's next call and tx B, until an answer
    ends the confirm (inside the confirm's span)."""
    if isinstance(planned, PaymentIntent):
        # blocked by Radar: no PSP was called
        metrics.payment_finished(
            livemode=planned.livemode,
            psp="none",
            status=planned.status,
            decline_code=(planned.last_payment_error or {}).get("decline_code") or "",
            known_codes=_METRIC_DECLINE_CODES,
        )
        return planned
    card = None  # the card in clear, for this confirm's PSP calls only
    while True:
        attempt = planned.attempt
        if card is None:
            card = vault_services.vault_card_hand_over(payment_method=attempt.intent.payment_method)
        result = _authorize_at_psp(attempt, card)
        if planned.relay_owed:
            outbox_relay_schedule()
        with tracing.span("pp.tx_b", attempt=attempt.public_id, outcome=str(result.outcome)):
            outcome = _confirm_apply(
                attempt=attempt, result=result, deadline=deadline, tried=planned.tried
            )
        metrics.attempt_answered(
            livemode=intent.livemode,
            psp=attempt.connector.connector_type,
            outcome=str(result.outcome),
        )
        if isinstance(outcome, PaymentIntent):
            _count_payment(outcome, attempt)
            return outcome  # as tx B left it, locked and saved
        if outcome is None:  # a webhook or inquiry applied the result first
            return PaymentIntent.objects.select_related("payment_method", "connector").get(
                pk=intent.pk
            )
        metrics.failover(
            livemode=intent.livemode,
            from_psp=attempt.connector.connector_type,
            reason=attempt.outcome,
        )
        planned = outcome


def intent_create_and_confirm(
    *, intent: PaymentIntent, actor: Actor, client_ip: str = "", merchant_country: str = ""
) -> PaymentIntent:
    """`POST /v1/payment_intents` with `confirm=true`: the intent as `intent_prepare` built it
    (not saved yet) is inserted by tx A itself, in the transaction of its first attempt, so the
    payment costs two transactions, as a confirm alone does. The rest is `intent_confirm`'s.

    A PlatformError in tx A (no connector can take the payment) rolls the insert back with the
    rest; the intent is then created on its own, as a create without confirm leaves it, so that
    the error can name it and the merchant can confirm it again."""
    pristine = copy.copy(intent)  # as prepared, should tx A roll back
    radar = {"client_ip": client_ip, "merchant_country": merchant_country}
    with tracing.span("pp.confirm", intent=intent.public_id, livemode=intent.livemode):
        deadline = time.monotonic() + settings.CONFIRM_TIME_BUDGET_SECONDS
        try:
            with tracing.span("pp.tx_a", intent=intent.public_id):
                planned = _create_and_plan(intent, actor=actor, radar=radar)
        except PlatformError:
            with transaction.atomic():
                intent_insert(pristine, actor=actor)
            raise
        return _confirm_run(intent, planned, deadline)


def _count_payment(intent: PaymentIntent, attempt: PaymentAttempt) -> None:
    """The confirm's end in the metrics: one counter increment, from what is in memory."""
    error = intent.last_payment_error or {}
    metrics.payment_finished(
        livemode=intent.livemode,
        psp=attempt.connector.connector_type,
        status=intent.status,
        decline_code=error.get("decline_code") or error.get("code") or "",
        known_codes=_METRIC_DECLINE_CODES,
    )


# the decline codes a metric label may take (an unknown PSP code is `other`), plus our own
# not-the-card codes
_METRIC_DECLINE_CODES = frozenset(DECLINE_CLASSES) | {
    "generic_decline",
    "processing_error",
    "psp_unavailable",
    "psp_authentication_failed",
    "connector_configuration_invalid",
    "psp_request_invalid",
}


def _confirm_begin(
    *, intent: PaymentIntent, actor: Actor, payment_method: str | None, radar: dict | None = None
) -> _PlannedAttempt | PaymentIntent:
    with transaction.atomic():
        intent = _lock_intent(intent.pk, with_connector=False)
        if payment_method:
            if intent.status not in (S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION):
                raise _unexpected_state(intent, "confirm")
            intent.payment_method = vault_selectors.payment_method_get_for_charge(
                merchant_id=intent.merchant_id, livemode=intent.livemode, public_id=payment_method
            )
            if intent.status == S.REQUIRES_PAYMENT_METHOD:
                intent.attach_payment_method()
        if intent.status == S.REQUIRES_PAYMENT_METHOD:
            raise InvalidRequestError(
                "You cannot confirm this PaymentIntent because it has no payment method: "
                "pass `payment_method`.",
                code="payment_intent_payment_method_missing",
                param="payment_method",
            )
        if intent.status != S.REQUIRES_CONFIRMATION:
            raise _unexpected_state(intent, "confirm")
        return _confirm_plan(intent, actor=actor, radar=radar)


def _confirm_plan(
    intent: PaymentIntent, *, actor: Actor, radar: dict | None
) -> _PlannedAttempt | PaymentIntent:
    """The rest of tx A, the intent locked in requires_confirmation: Radar, then routing and
    the first attempt, written by the ORM (the general path; create+confirm writes the same in
    one statement: `_create_and_plan`)."""
    # Radar, before routing (architecture section 4): a block ends the confirm here
    assessment = risk_step.assess(intent, **(radar or {}))
    if assessment.type == "blocked":
        risk_step.block(intent, assessment)
        planned = intent
    else:
        planned, previous = _first_attempt_in_memory(intent, fresh=False)
        planned.attempt.save()
        intent.save(update_fields=_PLANNED_FIELDS)
        _emit(intent, "payment_intent.processing", previous)
    audit_record_all([_confirmed_audit(intent, actor)])
    return planned


def _create_and_plan(
    intent: PaymentIntent, *, actor: Actor, radar: dict | None
) -> _PlannedAttempt | PaymentIntent:
    """tx A of create+confirm: `_confirm_plan` for an intent that does not exist yet, written in
    one statement (apps/intents/created_statement.py): the intent already in processing, its
    first attempt, the created and processing events and both audit rows. Radar's block is the
    branch that statement does not take: the general path's writes, in a transaction."""
    intent.created_at = intent.updated_at = timezone.now()
    as_created = copy.copy(intent)  # the created event shows it before Radar and routing
    created = NewIntentRecords()
    assessment = risk_step.assess(intent, **(radar or {}))
    if assessment.type == "blocked":
        with transaction.atomic():
            intent.save()
            as_created.created_at, as_created.updated_at = intent.created_at, intent.updated_at
            intent_created(as_created, actor=actor, records=created)
            created.write(intent)
            risk_step.block(intent, assessment)
            audit_record_all([_confirmed_audit(intent, actor)])
        return intent
    planned, previous = _first_attempt_in_memory(intent, fresh=True)
    intent_created(as_created, actor=actor, records=created)
    created.emit(intent, "payment_intent.processing", previous)
    created.audit.append(_confirmed_audit(intent, actor))
    created_statement.insert_created(
        intent=intent,
        attempt=planned.attempt,
        events=outbox_new_object_statement(
            obj=intent, object_type="payment_intent", events=created.events, when="created"
        ),
        audit=audit_insert_statement(created.audit, when="created"),
    )
    # no relay of its own: tx B's commit enqueues one for these rows too, a Redis round trip
    # less per payment (and the relay sweep covers a confirm that dies before tx B)
    return planned


def _confirmed_audit(intent: PaymentIntent, actor: Actor):
    return audit_entry(
        actor=actor,
        action="payment_intent.confirmed",
        object_type="payment_intent",
        object_id=intent.public_id,
        merchant_id=intent.merchant_id,
        livemode=intent.livemode,
    )


# the columns the first attempt's planning can change (status through the FSM, payment_method
# in tx A), not the intent's metadata, splits and the rest
_PLANNED_FIELDS = [
    "status",
    "payment_method",
    "pending_operation",
    "last_payment_error",
    "next_action",
    "risk_outcome",
    "capture_method",
    "amount",
    "amount_details",
    "updated_at",
]


def _first_attempt_in_memory(intent: PaymentIntent, *, fresh: bool) -> tuple[_PlannedAttempt, dict]:
    """Inside tx A (intent locked, or not written yet: `fresh`): ask routing, plan the attempt,
    move the intent to processing, all in memory; returns the plan and the intent's previous
    status. Every later attempt of the confirm is planned by the failover step (`_fail_over`)."""
    route = _route_next(intent, tried=frozenset(), first=True, fresh=fresh)
    route.attempt.risk_outcome = risk_step.public_outcome(intent.risk_outcome)
    previous_status = {"status": intent.status}
    intent.start_processing()
    intent.pending_operation = PaymentIntent.PendingOperation.AUTHORIZE
    intent.last_payment_error = None
    intent.next_action = None
    return route, previous_status


def _route_next(
    intent: PaymentIntent,
    *,
    tried: frozenset[int],
    first: bool,
    previous: PaymentAttempt | None = None,
    fresh: bool = False,
) -> _PlannedAttempt | None:
    """The routing decision for the intent's next attempt, and that attempt, not saved yet.
    None when no connector is left after a first attempt; on the first, no connector at all is
    `no_eligible_connector`. `fresh`: the intent was inserted by this transaction and has no
    attempt to read."""
    facts = vault_selectors.card_routing_facts(intent.payment_method)
    metadata = intent.metadata or {}
    routing_started = time.perf_counter()
    with tracing.span("pp.routing_decision", intent=intent.public_id, first=first) as span:
        decision = _route(intent, facts, metadata, tried)
        span.set_attribute("pp.candidates", len(decision.candidates))
    metrics.routing_decided(time.perf_counter() - routing_started)
    # the full decision trace (profile version, rule, scored candidates, skipped connectors
    # with reasons), plus the attempt's number within this confirm for the failover bound
    trace = decision.trace()
    return _attempt_for(
        intent, decision, trace, tried=tried, first=first, previous=previous, fresh=fresh
    )


def _route(intent: PaymentIntent, facts: dict, metadata: dict, tried: frozenset[int]):
    return routing_selectors.route_for_payment(
        merchant_id=intent.merchant_id,
        livemode=intent.livemode,
        currency=intent.currency,
        card_facts=facts,
        exclude=tried,
        amount=intent.amount,
        intent_id=intent.public_id,
        metadata=metadata,
        payment_method_type=intent.payment_method.type,
        customer_country=getattr(intent, "customer_country", "")
        or metadata.get("customer_country", ""),
    )


def _attempt_for(
    intent: PaymentIntent,
    decision,
    trace: dict,
    *,
    tried: frozenset[int],
    first: bool,
    previous: PaymentAttempt | None,
    fresh: bool = False,
) -> _PlannedAttempt | None:
    from apps.core.ids import new_public_id  # (kept local: only this function uses it)

    if previous is not None:
        last = {"sequence": previous.sequence, "routing_trace": previous.routing_trace}
        tried_so_far = tried
    elif fresh:
        last, tried_so_far = None, tried
    else:
        earlier = list(
            intent.attempts.order_by("sequence").values("sequence", "routing_trace", "connector_id")
        )
        last = earlier[-1] if earlier else None
        tried_so_far = tried | {row["connector_id"] for row in earlier}
    trace["confirm_attempt"] = (
        1
        if first or last is None
        else ((last["routing_trace"] or {}).get("confirm_attempt", last["sequence"]) + 1)
    )
    if not decision.candidates:
        if first:
            raise InvalidRequestError(
                "No connector can process this payment.",
                code="no_eligible_connector",
                extra={"routing": trace},
            )
        return None
    connector = decision.candidates[0]
    # the PSP idempotency key is derived from the attempt: a retry of this attempt can never
    # create a second charge, and a new attempt always gets a new key
    public_id = new_public_id("pa")
    attempt = PaymentAttempt(
        public_id=public_id,
        intent=intent,
        sequence=(last["sequence"] if last else 0) + 1,
        connector=connector,
        amount=intent.amount,
        currency=intent.currency,
        routing_trace=trace,
        psp_idempotency_key=f"{public_id}-authorize",
        # SCA as decided in tx A (every attempt of the confirm asks the same)
        three_d_secure=(intent.risk_outcome or {}).get("three_d_secure"),
    )
    return _PlannedAttempt(attempt=attempt, tried=tried_so_far | {connector.pk})


def _authorize_request(attempt: PaymentAttempt, card: CardData) -> AuthorizeRequest:
    """The attempt's authorization, byte for byte the same each time it is built: an inquiry's
    idempotent re-send must match the first request for the PSP to replay its answer."""
    intent = attempt.intent
    return AuthorizeRequest(
        attempt_id=attempt.public_id,
        idempotency_key=attempt.psp_idempotency_key,
        amount=attempt.amount,
        currency=attempt.currency,
        capture=intent.capture_method == PaymentIntent.CaptureMethod.AUTOMATIC,
        card=card,
        description=intent.description,
        customer_email=intent.customer_email,
        return_url=f"{settings.API_BASE_URL}/v1/payment_intents/{intent.public_id}/return",
        metadata={"attempt_id": attempt.public_id, "payment_intent": intent.public_id},
        three_d_secure=(attempt.three_d_secure or {}).get("requested", ""),
        sca_exemption=(attempt.three_d_secure or {}).get("exemption", ""),
    )


def _authorize_at_psp(attempt: PaymentAttempt, card: vault_services.CardHandOver) -> PSPResult:
    """`card`: from the vault once per confirm (failover reuses it for the next connector
    instead of decrypting it and fetching the CVC again). Through the connector gateway: under
    the connector's circuit breaker (an open one refuses without sending: ERROR, retryable
    elsewhere), recorded in its health, an adapter exception an UNKNOWN. The CVC is read in the
    round trip of the breaker's check (its `preread`), so the request is built after it."""
    intent = attempt.intent
    facts = {
        **vault_selectors.card_routing_facts(intent.payment_method),
        "currency": attempt.currency,
    }
    return gateway.authorize(
        connector=attempt.connector,
        request=lambda: _authorize_request(attempt, card.card),
        reference=attempt.public_id,
        facts=facts,
        preread=card.cvc_read_on,
    )


# what a PSP answer changes on its attempt; the routing trace (a sizeable JSON) is written once,
# at insert
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
