"""Checkout-plane services: create, confirm, capture, cancel, refund, resolve unknown outcomes.

Every PSP call follows the same shape (architecture section 4): tx A locks the intent, checks
the state, records the attempt and moves to `processing`; the PSP is called outside any
transaction; tx B locks again and applies the normalized result. A row lock is never held
across a PSP call, and every state change writes an outbox row in its own transaction."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.connectors import gateway
from apps.core.audit import Actor, audit_record
from apps.core.errors import ConflictError, InvalidRequestError
from apps.core.money import normalize_currency, validate_amount
from apps.events.services import (
    outbox_insert_statement,
    outbox_record,
    outbox_relay_schedule,
)
from apps.intents import ledger_hooks, statements
from apps.intents.models import IntentStatus, PaymentAttempt, PaymentIntent, Refund, RefundStatus
from apps.intents.representations import intent_representation, refund_representation
from apps.intents.selectors import intent_get, intent_get_for_return
from apps.merchants import selectors as merchant_selectors
from apps.psp_adapters.contract import (
    AuthorizeRequest,
    CancelRequest,
    CaptureRequest,
    CardData,
    Outcome,
    PSPResult,
    RefundRequest,
    RequestError,
    RetrieveRequest,
)
from apps.psp_adapters.decline_codes import is_hard
from apps.routing import selectors as routing_selectors
from apps.vault import selectors as vault_selectors
from apps.vault import services as vault_services

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


def _emit(intent: PaymentIntent, event_type: str, previous: dict | None = None) -> None:
    outbox_record(
        merchant_id=intent.merchant_id,
        livemode=intent.livemode,
        object_type="payment_intent",
        object_id=intent.public_id,
        event_type=event_type,
        payload=intent_representation(intent),
        previous_attributes=previous or {},
    )


def _emit_refund(refund: Refund, event_type: str) -> None:
    outbox_record(
        merchant_id=refund.merchant_id,
        livemode=refund.livemode,
        object_type="refund",
        object_id=refund.public_id,
        event_type=event_type,
        payload=refund_representation(refund),
    )


def _emit_attempt(attempt: PaymentAttempt, intent: PaymentIntent) -> None:
    from apps.intents.representations import attempt_representation

    outbox_record(
        merchant_id=intent.merchant_id,
        livemode=intent.livemode,
        object_type="payment_attempt",
        object_id=attempt.public_id,
        event_type=f"payment_attempt.{attempt.outcome}",
        payload=attempt_representation(attempt),
    )


# --------------------------------------------------------------------------- create


def intent_create(
    *,
    merchant,
    livemode: bool,
    amount,
    currency,
    actor: Actor,
    capture_method: str = "automatic",
    payment_method: str | None = None,
    order_id: str = "",
    customer_email: str = "",
    description: str = "",
    metadata: dict | None = None,
    splits: list[dict] | None = None,
    platform_fee_amount: int = 0,
    return_url: str = "",
) -> PaymentIntent:
    currency = normalize_currency(currency)
    amount = validate_amount(amount)
    _validate_return_url(return_url, livemode=livemode)
    splits = _validate_splits(
        merchant=merchant,
        livemode=livemode,
        amount=amount,
        splits=splits or [],
        platform_fee_amount=platform_fee_amount,
    )
    if capture_method not in PaymentIntent.CaptureMethod.values:
        raise InvalidRequestError(
            "capture_method must be 'automatic' or 'manual'.",
            code="parameter_invalid",
            param="capture_method",
        )
    method = None
    if payment_method:
        method = vault_selectors.payment_method_get_for_charge(
            merchant_id=merchant.id, livemode=livemode, public_id=payment_method
        )
    with transaction.atomic():
        intent = PaymentIntent(
            merchant=merchant,
            livemode=livemode,
            amount=amount,
            currency=currency,
            capture_method=capture_method,
            payment_method=method,
            order_id=order_id,
            customer_email=customer_email,
            description=description,
            metadata=metadata or {},
            splits=splits,
            platform_fee_amount=platform_fee_amount,
            return_url=return_url,
        )
        if method is not None:
            intent.attach_payment_method()
        intent.save()
        _emit(intent, "payment_intent.created")
        audit_record(
            actor=actor,
            action="payment_intent.created",
            object_type="payment_intent",
            object_id=intent.public_id,
            merchant_id=merchant.id,
            livemode=livemode,
            changes={"amount": [None, amount], "currency": [None, currency]},
        )
    return intent


def _validate_return_url(url: str, *, livemode: bool) -> None:
    """Where the shopper's browser is sent after 3-D Secure: an absolute http(s) URL and nothing
    a browser could read differently from us (control characters and spaces, which browsers
    strip; backslashes, which they read as slashes; credentials, which hide the real host)."""
    if not url:
        return
    problem = None
    if not isinstance(url, str) or len(url) > 2000:
        problem = "of at most 2000 characters"
    elif not url.isprintable() or any(c.isspace() or c == "\\" for c in url):
        problem = "without spaces, control characters or backslashes"
    else:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (raises on a bad port)
        except ValueError:
            parts = None
        schemes = ("https",) if livemode else ("https", "http")
        if parts is None or parts.scheme not in schemes or not parts.hostname:
            problem = "with a host"
        elif parts.username is not None or parts.password is not None or "@" in parts.netloc:
            problem = "without credentials"
    if problem:
        raise InvalidRequestError(
            "return_url must be an absolute https URL"
            + ("" if livemode else " (http too in test mode)")
            + f" {problem}.",
            code="url_invalid",
            param="return_url",
        )


def _validate_splits(
    *, merchant, livemode: bool, amount: int, splits: list[dict], platform_fee_amount
) -> list[dict]:
    """Marketplace splits: each seller must be this merchant's, amounts positive integers, and
    splits plus the platform fee may not exceed the payment amount."""
    if (
        isinstance(platform_fee_amount, bool)
        or not isinstance(platform_fee_amount, int)
        or (platform_fee_amount < 0)
    ):
        raise InvalidRequestError(
            "platform_fee_amount must be a non-negative integer.",
            code="amount_invalid",
            param="platform_fee_amount",
        )
    clean, seen = [], set()
    for index, split in enumerate(splits):
        param = f"splits[{index}]"
        seller = merchant_selectors.seller_get_for_split(
            merchant_id=merchant.id,
            livemode=livemode,
            public_id=split["seller"],
            param=f"{param}[seller]",
        )
        if seller.public_id in seen:
            raise InvalidRequestError(
                "Each seller may appear once in splits.",
                code="parameter_duplicate",
                param=f"{param}[seller]",
            )
        seen.add(seller.public_id)
        clean.append(
            {
                "seller": seller.public_id,
                "amount": validate_amount(split["amount"], param=f"{param}[amount]"),
            }
        )
    total = sum(s["amount"] for s in clean) + platform_fee_amount
    if total > amount:
        raise InvalidRequestError(
            f"Splits and platform fee ({total}) exceed the payment amount ({amount}).",
            code="splits_exceed_amount",
            param="splits" if clean else "platform_fee_amount",
        )
    return clean


# --------------------------------------------------------------------------- confirm


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
    *, intent: PaymentIntent, actor: Actor, payment_method: str | None = None
) -> PaymentIntent:
    """Authorizes through the route, failing over on soft declines and pre-processing errors,
    within the merchant's attempt and time budgets. Returns the intent in its resulting state."""
    if intent.status == S.REQUIRES_ACTION and payment_method is None:
        return intent_refresh_action(intent=intent, actor=actor)
    deadline = time.monotonic() + settings.CONFIRM_TIME_BUDGET_SECONDS
    planned = _confirm_begin(intent=intent, actor=actor, payment_method=payment_method)
    card = None  # the card in clear, for this confirm's PSP calls only
    while True:
        attempt = planned.attempt
        if card is None:
            card = vault_services.vault_card_for_authorization(
                payment_method=attempt.intent.payment_method
            )
        result = _authorize_at_psp(attempt, card)
        if planned.relay_owed:
            outbox_relay_schedule()
        outcome = _confirm_apply(
            attempt_id=attempt.pk,
            result=result,
            deadline=deadline,
            tried=planned.tried,
            saved_attempt=attempt,
        )
        if isinstance(outcome, PaymentIntent):
            return outcome  # as tx B left it, locked and saved
        if outcome is None:  # a webhook or inquiry applied the result first
            return PaymentIntent.objects.select_related("payment_method", "connector").get(
                pk=intent.pk
            )
        planned = outcome


def _confirm_begin(*, intent: PaymentIntent, actor: Actor, payment_method: str | None):
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
        planned = _plan_next_attempt(intent, tried=frozenset(), first=True)
        audit_record(
            actor=actor,
            action="payment_intent.confirmed",
            object_type="payment_intent",
            object_id=intent.public_id,
            merchant_id=intent.merchant_id,
            livemode=intent.livemode,
        )
    return planned


def _plan_next_attempt(
    intent: PaymentIntent,
    *,
    tried: frozenset[int],
    first: bool,
    previous: PaymentAttempt | None = None,
):
    """Inside tx A (intent locked): ask routing, record the attempt, move to processing.
    Returns None when no connector is left (the caller decides what that means). `previous`:
    on failover, the attempt that just failed, which is the intent's latest (attempts are only
    added under the intent's lock)."""
    route = _route_next(intent, tried=tried, first=first, previous=previous)
    if route is None:
        return None
    attempt = route.attempt
    attempt.save()
    previous_status = {"status": intent.status}
    unchanged = (
        not first
        and intent.status == S.PROCESSING
        and intent.pending_operation == PaymentIntent.PendingOperation.AUTHORIZE
        and intent.last_payment_error is None
        and intent.next_action is None
    )
    if not unchanged:  # on failover the intent is already processing this authorization
        if intent.status != S.PROCESSING:
            intent.start_processing()
        intent.pending_operation = PaymentIntent.PendingOperation.AUTHORIZE
        intent.last_payment_error = None
        intent.next_action = None
        # the columns this step can change (status through the FSM, payment_method in tx A),
        # not the intent's metadata, splits and the rest, on every attempt
        intent.save(
            update_fields=[
                "status",
                "payment_method",
                "pending_operation",
                "last_payment_error",
                "next_action",
                "updated_at",
            ]
        )
    if first:
        _emit(intent, "payment_intent.processing", previous_status)
    return route


def _route_next(
    intent: PaymentIntent,
    *,
    tried: frozenset[int],
    first: bool,
    previous: PaymentAttempt | None = None,
) -> _PlannedAttempt | None:
    """The routing decision for the intent's next attempt, and that attempt, not saved yet.
    None when no connector is left after a first attempt; on the first, no connector at all is
    `no_eligible_connector`."""
    from apps.core.ids import new_public_id  # (kept local: only this function uses it)

    facts = vault_selectors.card_routing_facts(intent.payment_method)
    metadata = intent.metadata or {}
    decision = routing_selectors.route_for_payment(
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
    # the full decision trace (profile version, rule, scored candidates, skipped connectors
    # with reasons), plus the attempt's number within this confirm for the failover bound
    trace = decision.trace()
    if previous is not None:
        last = {"sequence": previous.sequence, "routing_trace": previous.routing_trace}
        tried_so_far = tried
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
    )


def _authorize_at_psp(attempt: PaymentAttempt, card: CardData) -> PSPResult:
    """`card`: from the vault once per confirm (failover reuses it for the next connector
    instead of decrypting it and fetching the CVC again). Through the connector gateway: under
    the connector's circuit breaker (an open one refuses without sending: ERROR, retryable
    elsewhere), recorded in its health, an adapter exception an UNKNOWN."""
    intent = attempt.intent
    facts = {
        **vault_selectors.card_routing_facts(intent.payment_method),
        "currency": attempt.currency,
    }
    return gateway.authorize(
        connector=attempt.connector, request=_authorize_request(attempt, card), facts=facts
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
)


def _record_result(attempt: PaymentAttempt, result: PSPResult, outcome: str) -> None:
    _set_result(attempt, result, outcome)
    attempt.save(update_fields=_RESULT_FIELDS)


def _set_result(attempt: PaymentAttempt, result: PSPResult, outcome: str) -> None:
    attempt.outcome = outcome
    attempt.decline_code = result.decline_code[:60]
    attempt.raw_code = result.raw_code[:100]
    attempt.raw_message = result.raw_message[:500]
    attempt.psp_reference = result.psp_reference or attempt.psp_reference
    attempt.http_status = result.http_status
    attempt.latency_ms = result.latency_ms
    attempt.completed_at = timezone.now()


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
    *,
    attempt_id: int,
    result: PSPResult,
    deadline: float,
    tried: frozenset[int] | None = None,
    saved_attempt: PaymentAttempt | None = None,
) -> _PlannedAttempt | PaymentIntent | None:
    """tx B. Returns the next planned attempt when failing over, else the intent as saved, or
    None when someone else (webhook, inquiry) had already applied this attempt's result.
    `saved_attempt`: the attempt as tx A saved it; a pending attempt changes only here
    (webhooks wait for tx B, inquiries take unknown ones), so its row is locked and its outcome
    checked, and the object is not read again."""
    if (
        saved_attempt is not None
        and tried is not None
        and result.outcome in (Outcome.SOFT_DECLINE, Outcome.HARD_DECLINE, Outcome.ERROR)
    ):
        recorded, may_fail_over = _decline_disposition(
            saved_attempt, saved_attempt.intent, result, deadline
        )
        if may_fail_over:
            planned = _fail_over_in_one_statement(saved_attempt, result, recorded, tried)
            if planned is not None:
                return planned
    with transaction.atomic():
        if saved_attempt is not None:
            current = (
                PaymentAttempt.objects.select_for_update()
                .filter(pk=saved_attempt.pk)
                .values_list("outcome", flat=True)
                .get()
            )
            attempt = saved_attempt
        else:
            attempt = (
                # of=self: a bare FOR UPDATE would also lock the joined connector row, which
                # every payment through that connector shares, serializing them all
                PaymentAttempt.objects.select_for_update(of=("self",))
                .select_related("connector")
                .get(pk=attempt_id)
            )
            current = attempt.outcome
        intent = _lock_intent(
            attempt.intent_id,
            with_connector=False,
            payment_method=(
                saved_attempt.intent.payment_method if saved_attempt is not None else None
            ),
        )
        if current != PaymentAttempt.Outcome.PENDING:
            return None  # a webhook or inquiry got here first: it already applied the result
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
            recorded, may_fail_over = _decline_disposition(attempt, intent, result, deadline)
            _record_result(attempt, result, recorded)
            _emit_attempt(attempt, intent)
            if may_fail_over:
                if tried is None:
                    tried = frozenset(intent.attempts.values_list("connector_id", flat=True))
                planned = _plan_next_attempt(intent, tried=tried, first=False, previous=attempt)
                if planned is not None:
                    return planned
            previous = {"status": intent.status}
            intent.fail()
            intent.pending_operation = ""
            intent.last_payment_error = _payment_error(result, attempt)
            intent.save()
            vault_services.vault_discard_cvc(payment_method=intent.payment_method)
            _emit(intent, "payment_intent.payment_failed", previous)
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
    return recorded, may_fail_over


def _fail_over_in_one_statement(
    failed: PaymentAttempt, result: PSPResult, recorded: str, tried: frozenset[int]
) -> _PlannedAttempt | None:
    """tx B of a failover, in the common case, as one SQL statement: lock the attempt (still
    pending) and then the intent (still processing this authorization), record the attempt's
    result, write its outbox row and insert the next attempt. The same rows and locks as the
    general path, without its BEGIN/COMMIT round trips and ORM work: this sits between one
    PSP's answer and the next PSP's request. The routing decision is taken first, outside the
    statement (it reads only the process's compiled routing and what cannot change while the
    attempt is pending).

    None when the statement changed nothing (a webhook or inquiry got to the attempt first, the
    intent moved) or no connector is left: the caller then takes the general path, under
    locks, which decides."""
    from apps.intents.representations import attempt_representation

    intent = failed.intent
    planned = _route_next(intent, tried=tried, first=False, previous=failed)
    if planned is None:
        return None
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
    attempt_id = statements.fail_over(
        failed=failed, result_fields=_RESULT_FIELDS, event=event, next_attempt=planned.attempt
    )
    if attempt_id is None:
        return None
    planned.attempt.pk = attempt_id
    planned.attempt._state.adding = False  # saved, as if by the ORM
    planned.attempt._state.db = connection.alias
    planned.relay_owed = True
    return planned


def _apply_authorized(intent: PaymentIntent, attempt: PaymentAttempt, result: PSPResult) -> None:
    previous = {"status": intent.status, "amount_capturable": intent.amount_capturable}
    intent.connector = attempt.connector
    intent.psp_reference = result.psp_reference or attempt.psp_reference
    intent.pending_operation = ""
    intent.next_action = None
    intent.authorized_at = timezone.now()
    automatic = intent.capture_method == PaymentIntent.CaptureMethod.AUTOMATIC
    if automatic:
        intent.succeed()
        intent.amount_received = intent.amount
        intent.amount_capturable = 0
    else:
        intent.authorize()
        intent.amount_capturable = intent.amount
    intent.save()
    vault_services.vault_discard_cvc(payment_method=intent.payment_method)
    if automatic:
        ledger_hooks.on_captured(intent=intent, amount=intent.amount)
        _emit(intent, "payment_intent.succeeded", previous)
    else:
        ledger_hooks.on_authorized(intent=intent, attempt=attempt)
        _emit(intent, "payment_intent.amount_capturable_updated", previous)


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


# --------------------------------------------------------------------------- inquiries


def attempt_inquire(*, attempt_id: int) -> PaymentAttempt:
    """Asks the PSP what happened to an attempt whose outcome is unknown, with the attempt's own
    idempotency key, and applies the answer. Never creates a second charge, never fails over.

    How each PSP is asked (lookup, or the idempotent re-send of the original within the PSP's
    key window) is the gateway's business (`apps.connectors.gateway.inquire`)."""
    attempt = PaymentAttempt.objects.select_related("connector", "intent__payment_method").get(
        pk=attempt_id
    )
    if attempt.outcome != PaymentAttempt.Outcome.UNKNOWN:
        return attempt
    intent = attempt.intent

    def original() -> AuthorizeRequest:  # built only if the gateway re-sends it
        card = vault_services.vault_card_for_authorization(payment_method=intent.payment_method)
        return _authorize_request(attempt, card)

    result = gateway.inquire(
        connector=attempt.connector,
        attempt_id=attempt.public_id,
        idempotency_key=attempt.psp_idempotency_key,
        psp_reference=attempt.psp_reference,
        attempt_age_seconds=(timezone.now() - attempt.started_at).total_seconds(),
        original=original,
    )
    return _inquiry_apply(attempt_id=attempt.pk, result=result)


def _inquiry_apply(*, attempt_id: int, result: PSPResult) -> PaymentAttempt:
    with transaction.atomic():
        attempt = (
            # of=self: a bare FOR UPDATE would also lock the joined connector row, which every
            # payment through that connector shares, serializing them all
            PaymentAttempt.objects.select_for_update(of=("self",))
            .select_related("connector")
            .get(pk=attempt_id)
        )
        intent = _lock_intent(attempt.intent_id)
        if attempt.outcome != PaymentAttempt.Outcome.UNKNOWN:
            return attempt
        attempt.inquiry_count += 1
        if result.outcome == Outcome.APPROVED:
            _record_result(attempt, result, PaymentAttempt.Outcome.APPROVED)
            attempt.next_inquiry_at = None
            attempt.save()
            if intent.status == S.PROCESSING:
                _apply_authorized(intent, attempt, result)
        elif result.not_charged:
            # only an authoritative, well-formed answer (a decline, a request the PSP processed
            # and failed, a lookup that found no such payment) proves nothing was charged: the
            # payment failed (no failover after an unknown). A 404 from a lookup endpoint, a
            # 401 or a 5xx proves nothing and keeps the inquiry going (the else branch).
            outcome = {
                Outcome.HARD_DECLINE: PaymentAttempt.Outcome.HARD_DECLINE,
                Outcome.SOFT_DECLINE: PaymentAttempt.Outcome.SOFT_DECLINE,
            }.get(result.outcome, PaymentAttempt.Outcome.ERROR)
            _record_result(attempt, result, outcome)
            attempt.next_inquiry_at = None
            attempt.save()
            if intent.status == S.PROCESSING:
                previous = {"status": intent.status}
                intent.fail()
                intent.pending_operation = ""
                intent.last_payment_error = _payment_error(result, attempt)
                intent.save()
                _emit(intent, "payment_intent.payment_failed", previous)
        elif result.outcome == Outcome.REQUIRES_ACTION and intent.status == S.PROCESSING:
            _record_result(attempt, result, PaymentAttempt.Outcome.REQUIRES_ACTION)
            intent.require_action()
            intent.pending_operation = ""
            intent.next_action = result.next_action or {"type": "redirect_to_url"}
            intent.save()
            _emit(intent, "payment_intent.requires_action", {"status": S.PROCESSING})
        else:
            schedule = settings.INQUIRY_BACKOFF_SECONDS
            if attempt.inquiry_count >= len(schedule):
                attempt.next_inquiry_at = None
                intent.needs_review = True  # listed for ops in the admin
                intent.save()
                logger.warning(
                    "attempt %s still unknown after %s inquiries: needs review",
                    attempt.public_id,
                    attempt.inquiry_count,
                )
            else:
                attempt.next_inquiry_at = timezone.now() + timedelta(
                    seconds=schedule[attempt.inquiry_count]
                )
                _schedule_inquiry(attempt)
            attempt.save()
        return attempt


def attempts_inquire_due(*, limit: int = 200) -> int:
    """Beat sweep: inquire every unknown attempt whose next inquiry is due (covers lost tasks)."""
    due = list(
        PaymentAttempt.objects.filter(
            outcome=PaymentAttempt.Outcome.UNKNOWN,
            next_inquiry_at__lte=timezone.now(),
        ).values_list("pk", flat=True)[:limit]
    )
    for attempt_id in due:
        attempt_inquire(attempt_id=attempt_id)
    return len(due)


def intent_refresh_action(
    *, intent: PaymentIntent, actor: Actor, action_result: dict[str, str] | None = None
) -> PaymentIntent:
    """After 3DS: ask the PSP for the attempt's state and apply it. `action_result`: the query
    parameters the shopper came back with (some PSPs complete the payment from them); they come
    from a browser, so only the PSP's answer counts, and only when it is about this attempt's
    payment. An answer that settles nothing (the PSP refused the request, a 5xx, a timeout, an
    adapter error) leaves the intent as it was."""
    attempt = intent.attempts.filter(outcome=PaymentAttempt.Outcome.REQUIRES_ACTION).last()
    if attempt is None:
        raise _unexpected_state(intent, "confirm")
    # an adapter error comes back UNKNOWN: the PSP's word is missing, not negative
    result = gateway.action_result(
        connector=attempt.connector,
        request=RetrieveRequest(
            attempt_id=attempt.public_id,
            idempotency_key=attempt.psp_idempotency_key,
            psp_reference=attempt.psp_reference,
            action_result=action_result,
            amount=attempt.amount,
            capture=intent.capture_method == PaymentIntent.CaptureMethod.AUTOMATIC,
        ),
    )
    if not _answer_is_about(attempt, result):
        logger.warning(
            "ignored a PSP answer about another payment (%s) on the return of %s",
            result.psp_reference,
            attempt.public_id,
        )
        result = PSPResult(outcome=Outcome.UNKNOWN, raw_code="foreign_answer")
    with transaction.atomic():
        intent = _lock_intent(intent.pk)
        attempt = PaymentAttempt.objects.select_for_update().get(pk=attempt.pk)
        if intent.status != S.REQUIRES_ACTION:
            return intent
        if result.outcome == Outcome.APPROVED:
            _record_result(attempt, result, PaymentAttempt.Outcome.APPROVED)
            _apply_authorized(intent, attempt, result)
        elif result.outcome in (Outcome.SOFT_DECLINE, Outcome.HARD_DECLINE):
            _record_result(attempt, result, PaymentAttempt.Outcome.HARD_DECLINE)
            intent.fail()
            intent.next_action = None
            intent.last_payment_error = _payment_error(result, attempt)
            intent.save()
            _emit(intent, "payment_intent.payment_failed", {"status": S.REQUIRES_ACTION})
    return PaymentIntent.objects.select_related("payment_method", "connector").get(pk=intent.pk)


def _answer_is_about(attempt: PaymentAttempt, result: PSPResult) -> bool:
    """Whether a settling answer (approved, declined) is about this attempt's payment. After a
    redirect the PSP answers about whatever the browser's parameters name: a redirectResult
    replayed from another payment (or forged to look like one) gets that payment's answer, which
    must neither authorize nor fail this one. Same PSP reference, and the amount we asked for."""
    if result.outcome not in (Outcome.APPROVED, Outcome.SOFT_DECLINE, Outcome.HARD_DECLINE):
        return True  # settles nothing
    reference = result.psp_reference
    if attempt.psp_reference and reference and reference != attempt.psp_reference:
        return False
    if (
        not attempt.psp_reference
        and reference
        and PaymentAttempt.objects.filter(
            connector_id=attempt.connector_id, psp_reference=reference
        )
        .exclude(pk=attempt.pk)
        .exists()
    ):
        return False
    return not (
        result.outcome == Outcome.APPROVED
        and result.amount is not None
        and result.amount != attempt.amount
    )


def intent_return_from_action(*, public_id: str, action_result: dict[str, str]) -> PaymentIntent:
    """The shopper's browser is back from the PSP's redirect (3-D Secure): complete the
    authorization from what the PSP sent back, if the intent still waits for it. Safe to call
    any number of times (a webhook may have completed it first): it only asks the PSP."""
    intent = intent_get_for_return(public_id=public_id)
    if intent.status == S.REQUIRES_ACTION:
        intent = intent_refresh_action(
            intent=intent, actor=Actor.system("shopper_return"), action_result=action_result
        )
    return intent


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


def _begin_operation(intent: PaymentIntent, operation: str, amount: int | None = None) -> None:
    intent.pending_operation = operation
    intent.pending_amount = amount
    intent.pending_check_at = timezone.now() + timedelta(
        seconds=settings.PENDING_OPERATION_TIMEOUT_SECONDS
    )
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
    `unknown` and go to the attempt inquiries."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.PENDING_OPERATION_TIMEOUT_SECONDS)
    orphaned = PaymentAttempt.objects.filter(
        outcome=PaymentAttempt.Outcome.PENDING, started_at__lte=stale
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
    return orphaned + len(due)


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


# --------------------------------------------------------------------------- refunds


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
        remaining = intent.amount_received - intent.amount_refunded
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
