"""The outbox relay: committed outbox rows -> events -> webhook deliveries.

Exactly one event per committed outbox row, however often the relay runs and wherever it dies:
- rows are claimed with `FOR UPDATE SKIP LOCKED`, so concurrent relays take disjoint rows;
- the event, its deliveries and the row's `relayed_at` are written in ONE transaction: a relay
  that dies before the commit leaves nothing behind and the row is simply relayed again;
- `Event.outbox_id` is unique and inserted with ON CONFLICT DO NOTHING (as are deliveries on
  (event, endpoint)), so even a row whose event exists but was never marked gets no second one.
The HTTP sending happens after the commit, in separate tasks (`services.enqueue_deliveries`)."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from apps.core import metrics, tracing
from apps.events import catalog
from apps.events.conf import conf
from apps.events.models import Event, OutboxEvent, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RelayResult:
    events: int
    deliveries: int
    more: bool  # the batch was full: there may be more rows waiting


def outbox_relay_batch(*, limit: int | None = None) -> RelayResult:
    with tracing.span("pp.outbox_relay") as span:
        result = _relay_batch(limit=limit)
        span.set_attribute("pp.events", result.events)
        span.set_attribute("pp.deliveries", result.deliveries)
    metrics.outbox_relayed(result.events)
    return result


def _relay_batch(*, limit: int | None) -> RelayResult:
    from apps.events.services import enqueue_deliveries

    limit = limit or conf("EVENTS_RELAY_BATCH_SIZE")
    with transaction.atomic():
        rows = list(
            OutboxEvent.objects.filter(relayed_at__isnull=True)
            .order_by("id")
            .select_for_update(skip_locked=True)[:limit]
        )
        if not rows:
            return RelayResult(events=0, deliveries=0, more=False)
        row_ids = [row.pk for row in rows]
        Event.objects.bulk_create(
            [
                Event(
                    outbox_id=row.pk,
                    merchant_id=row.merchant_id,
                    livemode=row.livemode,
                    type=row.event_type,
                    object_type=row.object_type,
                    object_id=row.object_id,
                    sequence=row.sequence,
                    data=row.payload,
                    previous_attributes=row.previous_attributes,
                    request_id=row.request_id,
                    idempotency_key=row.idempotency_key,
                    created_at=row.created_at,
                )
                for row in rows
            ],
            ignore_conflicts=True,
        )
        events = list(
            Event.objects.filter(outbox_id__in=row_ids).only(
                "pk", "merchant_id", "livemode", "type"
            )
        )
        endpoints = defaultdict(list)
        for endpoint in WebhookEndpoint.objects.filter(
            merchant_id__in={row.merchant_id for row in rows},
            status=WebhookEndpoint.Status.ENABLED,
            deleted_at__isnull=True,
        ).only("pk", "merchant_id", "livemode", "enabled_events"):
            endpoints[(endpoint.merchant_id, endpoint.livemode)].append(endpoint)
        now = timezone.now()
        deliveries = [
            WebhookDelivery(
                event_id=event.pk,
                endpoint_id=endpoint.pk,
                merchant_id=event.merchant_id,
                livemode=event.livemode,
                next_attempt_at=now,
            )
            for event in events
            for endpoint in endpoints[(event.merchant_id, event.livemode)]
            if catalog.endpoint_wants(endpoint.enabled_events, event.type)
        ]
        delivery_ids: list[int] = []
        if deliveries:
            WebhookDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
            delivery_ids = list(
                WebhookDelivery.objects.filter(
                    event_id__in=[event.pk for event in events],
                    status=WebhookDelivery.Status.PENDING,
                    attempt_count=0,
                ).values_list("pk", flat=True)
            )
        OutboxEvent.objects.filter(pk__in=row_ids).update(relayed_at=now)
        if delivery_ids:
            transaction.on_commit(lambda: enqueue_deliveries(delivery_ids=delivery_ids))
    return RelayResult(events=len(events), deliveries=len(delivery_ids), more=len(rows) == limit)


def outbox_relay(*, max_batches: int | None = None) -> int:
    """Relays until the outbox is empty (or the batch budget is spent); returns events made."""
    total = 0
    for _ in range(max_batches or conf("EVENTS_RELAY_MAX_BATCHES")):
        result = outbox_relay_batch()
        total += result.events
        if not result.more:
            break
    return total
