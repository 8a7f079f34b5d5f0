"""tx A of a confirm: the intent locked (or, for create+confirm, not written yet), Radar, the
routing decision and the first attempt; written by the ORM for an existing intent and in one
statement (apps/intents/created_statement.py) for create+confirm."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from apps.core import metrics, tracing
from apps.core.audit import Actor, audit_entry, audit_insert_statement, audit_record_all
from apps.core.errors import InvalidRequestError, ServiceUnavailableError
from apps.events.services import (
    outbox_new_object_statement,
)
from apps.intents import (
    created_statement,
    risk_step,
)
from apps.intents.models import PaymentAttempt, PaymentIntent
from apps.intents.services.common import (
    S,
    _emit,
    _lock_intent,
    _unexpected_state,
)
from apps.intents.services.create import NewIntentRecords, intent_created
from apps.routing import selectors as routing_selectors
from apps.vault import selectors as vault_selectors

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


# why routing skipped a connector that would take the payment once it is back: its breaker,
# an operator's forced-open breaker, or its error rate (the probes enable it again)
_OUT_FOR_A_WHILE = frozenset(
    {"breaker_open", "breaker_half_open_busy", "breaker_forced_open", "disabled_auto"}
)


def _briefly_out(skipped: dict[str, str]) -> bool:
    """No candidate, but one only because it is out for a while: the merchant's request is not
    at fault and a retry later can succeed, so this is a 503 psp_unavailable, as a confirm whose
    every PSP failed is; no connector able to take it at all is the 400."""
    return any(reason in _OUT_FOR_A_WHILE for reason in skipped.values())


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
        if first and _briefly_out(decision.skipped):
            raise ServiceUnavailableError(
                "No payment provider is available for this payment right now (each one that "
                "could take it is out: see `routing`). Nothing was charged; try again shortly.",
                code="psp_unavailable",
                extra={"routing": trace},
            )
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
