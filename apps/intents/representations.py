"""The public shape of intents, attempts and refunds: used by the API and by the outbox, so an
event carries exactly what GET would have returned at that moment."""

from __future__ import annotations

from apps.intents.models import PaymentAttempt, PaymentIntent, Refund


def _ts(value) -> int | None:
    return int(value.timestamp()) if value else None


_OUTCOME = ("type", "risk_level", "risk_score", "rule", "reason", "seller_message")


def risk_outcome_public(stored: dict | None) -> dict | None:
    """Radar's `outcome` in Stripe's shape, from what is stored (which also keeps the score's
    contributions and the signals, shown in the admin)."""
    if not stored:
        return None
    return {key: stored.get(key) for key in _OUTCOME}


def attempt_representation(attempt: PaymentAttempt) -> dict:
    return {
        "id": attempt.public_id,
        "object": "payment_attempt",
        "sequence": attempt.sequence,
        "connector": attempt.connector.public_id,
        "connector_name": attempt.connector.name,
        "amount": attempt.amount,
        "currency": attempt.currency,
        "outcome": attempt.outcome,
        "decline_code": attempt.decline_code or None,
        "raw_code": attempt.raw_code or None,
        "raw_message": attempt.raw_message or None,
        "psp_reference": attempt.psp_reference or None,
        "latency_ms": attempt.latency_ms,
        "routing": {**(attempt.routing_trace or {}), "retry": attempt.retry}
        if attempt.retry
        else attempt.routing_trace or None,
        "risk_outcome": risk_outcome_public(attempt.risk_outcome),
        "three_d_secure": attempt.three_d_secure,
        "created": _ts(attempt.started_at),
        "completed": _ts(attempt.completed_at),
    }


def intent_representation(intent: PaymentIntent, *, expand_attempts: bool = False) -> dict:
    body = {
        "id": intent.public_id,
        "object": "payment_intent",
        "amount": intent.amount,
        "amount_details": {"surcharge": (intent.amount_details or {}).get("surcharge", 0)},
        "currency": intent.currency,
        "status": intent.status,
        "capture_method": intent.capture_method,
        "amount_capturable": intent.amount_capturable,
        "amount_received": intent.amount_received,
        "amount_refunded": intent.amount_refunded,
        "amount_disputed": intent.amount_disputed,
        "disputed": intent.disputed,
        "payment_method": intent.payment_method.public_id if intent.payment_method_id else None,
        "connector": intent.connector.public_id if intent.connector_id else None,
        "psp_reference": intent.psp_reference or None,
        "order_id": intent.order_id or None,
        "customer_email": intent.customer_email or None,
        "description": intent.description or None,
        "return_url": intent.return_url or None,
        "metadata": intent.metadata,
        "splits": intent.splits,
        "platform_fee_amount": intent.platform_fee_amount,
        "last_payment_error": intent.last_payment_error,
        "next_action": intent.next_action,
        "payment_method_options": intent.payment_method_options
        or {"card": {"request_three_d_secure": "automatic"}},
        "outcome": risk_outcome_public(intent.risk_outcome),
        "cancellation_reason": intent.cancellation_reason or None,
        "livemode": intent.livemode,
        "created": _ts(intent.created_at),
        "canceled_at": _ts(intent.canceled_at),
    }
    if expand_attempts:
        if "attempts" in getattr(intent, "_prefetched_objects_cache", {}):
            attempts = intent.attempts.all()  # loaded with the page (selectors.intent_list)
        else:
            attempts = intent.attempts.select_related("connector").order_by("sequence")
        body["attempts"] = [attempt_representation(a) for a in attempts]
    return body


def refund_representation(refund: Refund) -> dict:
    return {
        "id": refund.public_id,
        "object": "refund",
        "payment_intent": refund.intent.public_id,
        "amount": refund.amount,
        "currency": refund.currency,
        "status": refund.status,
        "reason": refund.reason or None,
        "failure_reason": refund.failure_reason or None,
        "psp_reference": refund.psp_reference or None,
        "metadata": refund.metadata,
        "livemode": refund.livemode,
        "created": _ts(refund.created_at),
    }
