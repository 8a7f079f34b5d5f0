"""The public shape of events, webhook endpoints and deliveries (API and webhook bodies)."""

from __future__ import annotations

import json

from apps.events.models import Event, WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint


def _ts(value) -> int | None:
    return int(value.timestamp()) if value else None


def event_representation(event: Event) -> dict:
    return {
        "id": event.public_id,
        "object": "event",
        "type": event.type,
        "created": _ts(event.created_at),
        "livemode": event.livemode,
        "sequence": event.sequence,
        "data": {"object": event.data, "previous_attributes": event.previous_attributes or {}},
        "request": {
            "id": event.request_id or None,
            "idempotency_key": event.idempotency_key or None,
        },
    }


def event_body(event: Event) -> bytes:
    """The webhook body: exactly what GET /v1/events/{id} returns."""
    return json.dumps(event_representation(event), separators=(",", ":")).encode()


def endpoint_representation(endpoint: WebhookEndpoint, *, secret: str | None = None) -> dict:
    body = {
        "id": endpoint.public_id,
        "object": "webhook_endpoint",
        "url": endpoint.url,
        "description": endpoint.description or None,
        "enabled_events": endpoint.enabled_events,
        "status": endpoint.status,
        "disabled_reason": endpoint.disabled_reason or None,
        "metadata": endpoint.metadata,
        "livemode": endpoint.livemode,
        "created": _ts(endpoint.created_at),
    }
    if secret is not None:
        body["secret"] = secret  # only in the create and roll responses
    return body


def attempt_representation(attempt: WebhookDeliveryAttempt) -> dict:
    return {
        "number": attempt.number,
        "started": _ts(attempt.started_at),
        "latency_ms": attempt.latency_ms,
        "status_code": attempt.status_code,
        "response_body": attempt.response_body or None,
        "error": attempt.error or None,
        "succeeded": attempt.succeeded,
    }


def delivery_representation(delivery: WebhookDelivery) -> dict:
    return {
        "id": delivery.public_id,
        "object": "webhook_delivery",
        "webhook_endpoint": delivery.endpoint.public_id,
        "event": delivery.event.public_id,
        "event_type": delivery.event.type,
        "status": delivery.status,
        "attempt_count": delivery.attempt_count,
        "next_attempt": _ts(delivery.next_attempt_at) if delivery.status == "pending" else None,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error or None,
        "delivered": _ts(delivery.delivered_at),
        "created": _ts(delivery.created_at),
        "attempts": [attempt_representation(a) for a in delivery.attempts.all()],
        "livemode": delivery.livemode,
    }
