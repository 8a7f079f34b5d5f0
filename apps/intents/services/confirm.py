"""Confirming a payment intent: the entry points and the loop around the PSP call.

Every PSP call follows the same shape (architecture section 4): tx A locks the intent, checks
the state, records the attempt and moves to `processing` (`confirm_plan`); the PSP is called
outside any transaction (through the connector gateway, here); tx B locks again and applies the
normalized result (`confirm_apply`). A row lock is never held across a PSP call, and every state
change writes an outbox row in its own transaction. The hot steps are single statements
(create+confirm's tx A, an approval's tx B, the failover step); the cases they cannot take are
explicit branches through the ORM."""

from __future__ import annotations

import copy
import logging
import time
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction

from apps.connectors import gateway
from apps.core import metrics, tracing
from apps.core.audit import Actor
from apps.core.errors import PlatformError
from apps.events.services import (
    outbox_relay_schedule,
)
from apps.intents.models import PaymentAttempt, PaymentIntent
from apps.intents.services.common import (
    S,
)
from apps.intents.services.create import intent_insert
from apps.psp_adapters.contract import (
    AuthorizeRequest,
    CardData,
    PSPResult,
)
from apps.psp_adapters.decline_codes import DECLINE_CLASSES
from apps.vault import selectors as vault_selectors
from apps.vault import services as vault_services

if TYPE_CHECKING:
    pass

from apps.intents.services.confirm_apply import _confirm_apply
from apps.intents.services.confirm_plan import _confirm_begin, _create_and_plan, _PlannedAttempt

logger = logging.getLogger(__name__)


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
