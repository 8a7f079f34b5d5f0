"""Unknown PSP outcomes: the inquiry that resolves them, with the attempt's own idempotency key,
never by a second charge; and completing an authorization after 3-D Secure."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.connectors import gateway
from apps.core.audit import Actor
from apps.intents.models import PaymentAttempt, PaymentIntent
from apps.intents.selectors import intent_get_for_return
from apps.intents.services.common import (
    S,
    _emit,
    _lock_intent,
    _unexpected_state,
)
from apps.intents.services.confirm import _authorize_request
from apps.intents.services.confirm_apply import (
    _apply_authorized,
    _payment_error,
    _record_result,
    _schedule_inquiry,
)
from apps.psp_adapters.contract import (
    AuthorizeRequest,
    Outcome,
    PSPResult,
    RetrieveRequest,
)
from apps.vault import services as vault_services

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


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
