"""Webhook deliveries: the delivery loop (a lock-free claim, signed requests sent in a batch,
results recorded in one statement, retries on the schedule, dead letters) and replay of one
delivery or of an endpoint's failed ones."""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.core import metrics, tracing
from apps.core.audit import Actor, audit_record
from apps.core.errors import ConflictError
from apps.events import signing
from apps.events.conf import conf
from apps.events.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from apps.events.representations import event_body
from apps.events.sender import DeliveryResult, OutgoingWebhook, get_sender
from apps.events.services._shared import _lock_endpoint
from apps.events.services.endpoints import endpoint_signing_keys

logger = logging.getLogger(__name__)

D = WebhookDelivery.Status


def enqueue_deliveries(*, delivery_ids: list[int], countdown: float | None = None) -> None:
    """Hands deliveries to Celery in batches. If the broker is down they stay due in the
    database and the beat sweep sends them."""
    from apps.events.tasks import deliver_webhooks

    size = conf("WEBHOOK_DELIVERY_BATCH_SIZE")
    for start in range(0, len(delivery_ids), size):
        chunk = delivery_ids[start : start + size]
        try:
            deliver_webhooks.apply_async((chunk,), countdown=countdown, retry=False)
        except Exception:
            logger.warning(
                "could not enqueue %d webhook deliveries; the sweep will send them", len(chunk)
            )
            return


def _claim_sql(*, limit: int | None) -> str:
    table = WebhookDelivery._meta.db_table
    due = (
        "status = 'pending' AND next_attempt_at <= %(now)s "
        "AND (locked_until IS NULL OR locked_until < %(now)s)"
    )
    if limit is None:
        return (
            f"UPDATE {table} SET locked_until = %(lease)s "
            f"WHERE id = ANY(%(ids)s) AND {due} RETURNING id"
        )
    return (
        f"UPDATE {table} SET locked_until = %(lease)s WHERE id IN ("
        f"SELECT id FROM {table} WHERE {due} ORDER BY next_attempt_at LIMIT {int(limit)} "
        f"FOR UPDATE SKIP LOCKED) RETURNING id"
    )


def _claim(*, ids: list[int] | None = None, limit: int | None = None) -> list[int]:
    """Lock-free claim: a delivery is taken by whoever sets its lease first."""
    now = timezone.now()
    params = {
        "now": now,
        "lease": now + timedelta(seconds=conf("WEBHOOK_DELIVERY_LEASE_SECONDS")),
        "ids": ids or [],
    }
    with connection.cursor() as cursor:
        cursor.execute(_claim_sql(limit=limit), params)
        return [row[0] for row in cursor.fetchall()]


def webhook_deliveries_deliver(*, delivery_ids: list[int]) -> int:
    """Sends the given deliveries that are due and not claimed by someone else."""
    return _deliver(_claim(ids=list(delivery_ids)))


def webhook_deliveries_deliver_due(*, limit: int = 500) -> int:
    """Beat sweep: every due delivery (first tries whose task was lost, retries, replays)."""
    sent = 0
    batch = conf("WEBHOOK_DELIVERY_BATCH_SIZE")
    while sent < limit:
        claimed = _claim(limit=min(batch, limit - sent))
        if not claimed:
            break
        sent += _deliver(claimed)
    return sent


def _retry_delay(retry_count: int) -> float | None:
    """Seconds until the next try after the `retry_count`-th failure; None: dead-letter."""
    schedule = conf("WEBHOOK_RETRY_SCHEDULE_SECONDS")
    if retry_count > len(schedule):
        return None
    jitter = conf("WEBHOOK_RETRY_JITTER")
    return schedule[retry_count - 1] * (1 + random.uniform(-jitter, jitter))


def _deliver(claimed: list[int]) -> int:
    if not claimed:
        return 0
    with tracing.span("pp.webhook_delivery", deliveries=len(claimed)):
        return _deliver_claimed(claimed)


def _deliver_claimed(claimed: list[int]) -> int:
    now = timezone.now()
    deliveries = list(
        WebhookDelivery.objects.filter(pk__in=claimed).select_related("event", "endpoint")
    )
    bodies: dict[int, bytes] = {}
    keys: dict[int, list[bytes]] = {}
    outgoing: list[OutgoingWebhook] = []
    skipped: list[WebhookDelivery] = []
    timestamp = int(now.timestamp())
    for delivery in deliveries:
        endpoint = delivery.endpoint
        if endpoint.deleted_at is not None or endpoint.status != WebhookEndpoint.Status.ENABLED:
            skipped.append(delivery)
            continue
        body = bodies.get(delivery.event_id)
        if body is None:
            body = bodies[delivery.event_id] = event_body(delivery.event)
        if endpoint.pk not in keys:
            keys[endpoint.pk] = endpoint_signing_keys(endpoint, now=now)
        message_id = delivery.event.public_id
        outgoing.append(
            OutgoingWebhook(
                delivery_id=delivery.pk,
                url=endpoint.url,
                body=body,
                livemode=delivery.livemode,
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": "PaymentsPlatform-Webhooks/1.0",
                    "webhook-id": message_id,
                    "webhook-timestamp": str(timestamp),
                    "webhook-signature": signing.signature_header(
                        keys=keys[endpoint.pk],
                        message_id=message_id,
                        timestamp=timestamp,
                        body=body,
                    ),
                },
            )
        )
    results = get_sender().send_all(outgoing) if outgoing else []
    _record_results(deliveries, results, skipped)
    for delivery in deliveries:
        result = {
            WebhookDelivery.Status.SUCCEEDED: "succeeded",
            WebhookDelivery.Status.DEAD: "dead",
            WebhookDelivery.Status.PENDING: "failed",
        }.get(delivery.status)
        if result:
            metrics.webhook_delivery(result=result)
    for result in results:
        if result.latency_ms is not None:
            metrics.WEBHOOK_DELIVERY_DURATION.observe(result.latency_ms / 1000)
    return len(results)


def _record_results(
    deliveries: list[WebhookDelivery],
    results: list[DeliveryResult],
    skipped: list[WebhookDelivery],
) -> None:
    now = timezone.now()
    by_id = {d.pk: d for d in deliveries}
    attempts = []
    succeeded_endpoints: set[int] = set()
    failed_endpoints: set[int] = set()
    soon: dict[int, list[int]] = {}
    for result in results:
        delivery = by_id[result.delivery_id]
        delivery.attempt_count += 1
        attempts.append(
            WebhookDeliveryAttempt(
                delivery_id=delivery.pk,
                number=delivery.attempt_count,
                started_at=result.started_at,
                latency_ms=result.latency_ms,
                status_code=result.status_code,
                response_body=result.response_body,
                error=result.error,
                succeeded=result.succeeded,
            )
        )
        delivery.locked_until = None
        delivery.last_attempt_at = result.started_at
        delivery.last_status_code = result.status_code
        if result.succeeded:
            delivery.status = D.SUCCEEDED
            delivery.delivered_at = now
            delivery.next_attempt_at = None
            delivery.last_error = ""
            succeeded_endpoints.add(delivery.endpoint_id)
            continue
        failed_endpoints.add(delivery.endpoint_id)
        delivery.last_error = (result.error or f"HTTP {result.status_code}")[:300]
        delivery.retry_count += 1
        delay = _retry_delay(delivery.retry_count)
        if delay is None:
            delivery.status = D.DEAD
            delivery.dead_at = now
            delivery.next_attempt_at = None
            logger.warning(
                "webhook delivery %s dead-lettered after %d attempts",
                delivery.public_id,
                delivery.attempt_count,
            )
        else:
            delivery.next_attempt_at = now + timedelta(seconds=delay)
            if delay <= conf("WEBHOOK_RETRY_COUNTDOWN_MAX_SECONDS"):
                soon.setdefault(int(delay) + 1, []).append(delivery.pk)
    for delivery in skipped:
        delivery.locked_until = None
        delivery.next_attempt_at = None
        if delivery.endpoint.deleted_at is not None:
            delivery.status = D.CANCELED
        else:
            delivery.status = D.DEAD
            delivery.dead_at = now
            delivery.last_error = "endpoint disabled"
    with transaction.atomic():
        WebhookDeliveryAttempt.objects.bulk_create(attempts)
        _save_delivery_results(deliveries)
        if succeeded_endpoints:
            WebhookEndpoint.objects.filter(pk__in=succeeded_endpoints).update(
                failing_since=None, last_success_at=now
            )
        if failed_endpoints - succeeded_endpoints:
            WebhookEndpoint.objects.filter(
                pk__in=failed_endpoints - succeeded_endpoints, failing_since__isnull=True
            ).update(failing_since=now)
        for countdown, ids in soon.items():
            transaction.on_commit(
                lambda ids=ids, countdown=countdown: enqueue_deliveries(
                    delivery_ids=ids, countdown=countdown
                )
            )


_RESULT_COLUMNS = (
    ("status", "varchar"),
    ("attempt_count", "integer"),
    ("retry_count", "integer"),
    ("next_attempt_at", "timestamptz"),
    ("last_attempt_at", "timestamptz"),
    ("last_status_code", "smallint"),
    ("last_error", "varchar"),
    ("delivered_at", "timestamptz"),
    ("dead_at", "timestamptz"),
)


def _save_delivery_results(deliveries: list[WebhookDelivery]) -> None:
    """One UPDATE … FROM (VALUES …) for the whole batch (bulk_update's CASE per field and
    row costs more Python time than the HTTP requests themselves). Releases the claims."""
    if not deliveries:
        return
    row = "(%s::bigint, " + ", ".join(f"%s::{kind}" for _, kind in _RESULT_COLUMNS) + ")"
    names = ", ".join(name for name, _ in _RESULT_COLUMNS)
    assignments = ", ".join(f"{name} = v.{name}" for name, _ in _RESULT_COLUMNS)
    params: list = []
    for delivery in deliveries:
        params.append(delivery.pk)
        params.extend(getattr(delivery, name) for name, _ in _RESULT_COLUMNS)
    table = WebhookDelivery._meta.db_table
    sql = (
        f"UPDATE {table} AS d SET {assignments}, locked_until = NULL "
        f"FROM (VALUES {', '.join([row] * len(deliveries))}) AS v(id, {names}) "
        "WHERE d.id = v.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# --------------------------------------------------------------------------- replay


def _requeue(queryset, *, now: datetime) -> list[int]:
    """Inside a transaction. Rows are locked first, so a sender cannot claim one between the
    check and the update; rows a sender holds right now are left alone."""
    not_in_flight = Q(locked_until__isnull=True) | Q(locked_until__lt=now)
    ids = list(queryset.filter(not_in_flight).select_for_update().values_list("pk", flat=True))
    WebhookDelivery.objects.filter(pk__in=ids).update(
        status=D.PENDING,
        retry_count=0,
        next_attempt_at=now,
        dead_at=None,
        locked_until=None,
        replay_count=F("replay_count") + 1,
    )
    return ids


def _ensure_endpoint_enabled(endpoint: WebhookEndpoint) -> None:
    if endpoint.deleted_at is not None or endpoint.status != WebhookEndpoint.Status.ENABLED:
        raise ConflictError(
            "This webhook endpoint is disabled: enable it before replaying deliveries.",
            code="webhook_endpoint_disabled",
        )


def webhook_delivery_replay(*, delivery: WebhookDelivery, actor: Actor) -> WebhookDelivery:
    """Sends one delivery again now (whatever its status), with the same webhook-id, and a
    fresh retry schedule if it fails."""
    now = timezone.now()
    with transaction.atomic():
        endpoint = _lock_endpoint(delivery.endpoint_id)
        _ensure_endpoint_enabled(endpoint)
        if not _requeue(WebhookDelivery.objects.filter(pk=delivery.pk), now=now):
            raise ConflictError(
                "This delivery is being sent right now; try again in a minute.",
                code="webhook_delivery_in_progress",
            )
        audit_record(
            actor=actor,
            action="webhook_delivery.replayed",
            object_type="webhook_delivery",
            object_id=delivery.public_id,
            merchant_id=delivery.merchant_id,
            livemode=delivery.livemode,
            changes={"status": [delivery.status, "pending"]},
        )
        transaction.on_commit(lambda: enqueue_deliveries(delivery_ids=[delivery.pk]))
    delivery.refresh_from_db()
    return delivery


def webhook_deliveries_replay_failed(
    *, endpoint: WebhookEndpoint, since: datetime, actor: Actor
) -> int:
    """Every delivery to this endpoint created since `since` that failed: dead-lettered ones,
    and those still waiting for a retry (they are sent now)."""
    now = timezone.now()
    with transaction.atomic():
        endpoint = _lock_endpoint(endpoint.pk)
        _ensure_endpoint_enabled(endpoint)
        failed = WebhookDelivery.objects.filter(endpoint=endpoint, created_at__gte=since).filter(
            Q(status=D.DEAD) | Q(status=D.PENDING, retry_count__gt=0)
        )
        ids = _requeue(failed, now=now)
        audit_record(
            actor=actor,
            action="webhook_deliveries.replayed",
            object_type="webhook_endpoint",
            object_id=endpoint.public_id,
            merchant_id=endpoint.merchant_id,
            livemode=endpoint.livemode,
            changes={"since": [None, since.isoformat()], "replayed": [None, len(ids)]},
        )
        transaction.on_commit(lambda: enqueue_deliveries(delivery_ids=ids))
    return len(ids)
