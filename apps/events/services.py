from __future__ import annotations

from django.db.models import Max

from apps.core.logging import get_request_id
from apps.events.models import OutboxEvent


def outbox_record(
    *,
    merchant_id: int,
    livemode: bool,
    object_type: str,
    object_id: str,
    event_type: str,
    payload: dict,
    previous_attributes: dict | None = None,
    idempotency_key: str = "",
) -> OutboxEvent:
    """Call inside the transaction that changes the object, with the object's row locked:
    the lock makes the per-object sequence race-free (the unique constraint is the backstop)."""
    last = OutboxEvent.objects.filter(object_id=object_id).aggregate(m=Max("sequence"))["m"]
    return OutboxEvent.objects.create(
        merchant_id=merchant_id,
        livemode=livemode,
        object_type=object_type,
        object_id=object_id,
        sequence=(last or 0) + 1,
        event_type=event_type,
        payload=payload,
        previous_attributes=previous_attributes or {},
        request_id=get_request_id() or "",
        idempotency_key=idempotency_key,
    )
