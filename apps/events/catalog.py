"""The event types a merchant can subscribe to, and `*` wildcard matching.

Every type a service may write to the outbox is listed here: `enabled_events` is validated
against this list, so a typo is a 400 instead of an endpoint that silently never fires. An app
that starts emitting a new type adds it here."""

from __future__ import annotations

from functools import lru_cache

EVENT_TYPES: tuple[str, ...] = (
    "payment_intent.created",
    "payment_intent.processing",
    "payment_intent.requires_action",
    "payment_intent.amount_capturable_updated",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.capture_failed",
    "payment_intent.canceled",
    "payment_intent.refunded",
    "payment_attempt.soft_decline",
    "payment_attempt.hard_decline",
    "payment_attempt.error",
    "refund.created",
    "refund.succeeded",
    "refund.failed",
    "refund.canceled",
    "payout.created",
    "payout.paid",
    "payout.updated",
    "payout.failed",
    "payout.canceled",
    "dispute.created",
    "dispute.updated",
    "dispute.closed",
    "dispute.funds_withdrawn",
    "dispute.funds_reinstated",
    "webhook_endpoint.disabled",
    "review.opened",
    "review.closed",
    "reconciliation.run.completed",
    "reconciliation.discrepancy.created",
)


def pattern_matches(pattern: str, event_type: str) -> bool:
    """`*` matches everything; `payment_intent.*` every payment_intent event; else exact."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def endpoint_wants(enabled_events: list[str], event_type: str) -> bool:
    return any(pattern_matches(pattern, event_type) for pattern in enabled_events)


@lru_cache(maxsize=256)
def is_valid_pattern(pattern: str) -> bool:
    """A known type, `*`, or `<object>.*` for an object that has known types."""
    if pattern == "*":
        return True
    if "*" in pattern[:-1] or (pattern.endswith("*") and not pattern.endswith(".*")):
        return False  # only whole-segment wildcards at the end
    return any(pattern_matches(pattern, known) for known in EVENT_TYPES)
