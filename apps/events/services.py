"""Outbound events: the outbox, merchant webhook endpoints, deliveries, replay, disabling.

The relay (outbox -> events -> deliveries) is in `relay.py`, inbound PSP webhooks in
`inbound.py`; this module holds the writes merchants and ops trigger, and the delivery loop."""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import redis
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.core.audit import Actor, audit_record
from apps.core.crypto import Ciphertext, decrypt, encrypt
from apps.core.errors import ConflictError, InvalidRequestError
from apps.core.logging import get_request_id
from apps.core.redis_client import checkout_redis
from apps.events import catalog, signing, url_safety
from apps.events.conf import conf
from apps.events.middleware import get_idempotency_key
from apps.events.models import (
    OutboxEvent,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
)
from apps.events.representations import endpoint_representation, event_body
from apps.events.sender import DeliveryResult, OutgoingWebhook, get_sender

logger = logging.getLogger(__name__)

SECRET_AAD = b"webhook-endpoint-secret"
D = WebhookDelivery.Status


# --------------------------------------------------------------------------- outbox


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
    the lock makes the per-object sequence race-free (the unique constraint is the backstop).
    The relay is enqueued when that transaction commits (once per transaction)."""
    row = _outbox_row(
        merchant_id=merchant_id,
        livemode=livemode,
        object_type=object_type,
        object_id=object_id,
        event_type=event_type,
        payload=payload,
        previous_attributes=previous_attributes,
        idempotency_key=idempotency_key,
    )
    with connection.cursor() as cursor:
        cursor.execute(*_outbox_insert(row))
        row.pk, row.sequence = cursor.fetchone()
    outbox_relay_schedule()
    return row


def outbox_insert_statement(*, when: str, **fields) -> tuple[str, list]:
    """For a caller that writes an outbox row inside its own single statement, as a
    data-modifying CTE: the INSERT as (sql, params), written only if the relation `when` of
    that statement yields a row. `fields` as for `outbox_record`. The caller owes the relay:
    `outbox_relay_schedule()`."""
    return _outbox_insert(_outbox_row(**fields), when=when)


def _outbox_row(
    *, previous_attributes: dict | None = None, idempotency_key: str = "", **fields
) -> OutboxEvent:
    """`fields`: merchant_id, livemode, object_type, object_id, event_type, payload."""
    return OutboxEvent(
        **fields,
        previous_attributes=previous_attributes or {},
        request_id=get_request_id() or "",
        idempotency_key=idempotency_key or get_idempotency_key(),
        created_at=timezone.now(),
    )


@lru_cache(maxsize=8)
def _outbox_insert_sql(when: str) -> str:
    # one statement: the next sequence is computed inside the INSERT (this runs on every state
    # change of the checkout plane, and the ORM's aggregate + insert cost twice the round trips
    # and several times the CPU)
    table = OutboxEvent._meta.db_table
    return f"""
INSERT INTO {table}
    (merchant_id, livemode, object_type, object_id, sequence, event_type, payload,
     previous_attributes, request_id, idempotency_key, created_at)
SELECT %s, %s, %s, %s,
       (SELECT COALESCE(MAX(sequence), 0) + 1 FROM {table} WHERE object_id = %s),
       %s, %s::jsonb, %s::jsonb, %s, %s, %s
{f"FROM {when}" if when else ""}
RETURNING id, sequence"""


def _outbox_insert(row: OutboxEvent, when: str = "") -> tuple[str, list]:
    params = [
        row.merchant_id,
        row.livemode,
        row.object_type,
        row.object_id,
        row.object_id,
        row.event_type,
        json.dumps(row.payload),
        json.dumps(row.previous_attributes),
        row.request_id,
        row.idempotency_key,
        row.created_at,
    ]
    return _outbox_insert_sql(when), params


RELAY_QUEUED_KEY = "events:relay:queued"


def _enqueue_relay() -> None:
    """After a commit with outbox rows: make sure a relay task is queued. One queued relay
    covers every row committed before it starts, so while one waits (a flag in Redis, which the
    task clears as it starts, before it reads the outbox) there is nothing to publish: under
    load a handful of tasks relay thousands of rows instead of one task per transaction."""
    from apps.events.tasks import relay_outbox

    try:
        ttl = conf("EVENTS_RELAY_QUEUED_TTL_SECONDS")
        if not _redis().set(RELAY_QUEUED_KEY, b"1", nx=True, ex=ttl):
            return
    except Exception:  # Redis trouble: publish anyway (the broker may still work)
        logger.warning("outbox relay flag unavailable; publishing the relay regardless")
    try:
        # no publish retries: a broker outage must not slow the checkout plane; the beat sweep
        # relays whatever this misses. The short countdown lets the rows of many transactions
        # share one relay task.
        relay_outbox.apply_async(retry=False, countdown=conf("EVENTS_RELAY_COALESCE_SECONDS"))
    except Exception:
        _relay_queued_clear()
        logger.warning("could not enqueue the outbox relay; the sweep will pick the rows up")


def _redis() -> redis.Redis:
    # this runs after every checkout commit; if Redis does not answer, the sweep covers the gap
    return checkout_redis(timeout=0.5)


def _relay_queued_clear() -> None:
    try:
        _redis().delete(RELAY_QUEUED_KEY)
    except Exception:
        logger.warning("could not clear the outbox relay flag; it expires by itself")


def outbox_relay_started() -> None:
    """Called by the relay task before it reads the outbox: rows committed from now on enqueue
    a new task."""
    _relay_queued_clear()


_enqueue_relay.is_outbox_relay_trigger = True  # type: ignore[attr-defined]


def outbox_relay_schedule() -> None:
    """The relay, enqueued when the current transaction commits (at once outside one), once
    per transaction: `outbox_record` calls it; callers of `outbox_insert_statement` too."""
    if connection.in_atomic_block and any(
        getattr(func, "is_outbox_relay_trigger", False) for _, func, _ in connection.run_on_commit
    ):
        return  # already scheduled for this transaction
    transaction.on_commit(_enqueue_relay)


# --------------------------------------------------------------------------- endpoints


@dataclass(frozen=True)
class IssuedEndpoint:
    endpoint: WebhookEndpoint
    secret: str  # shown once


def _seal(secret: str) -> Ciphertext:
    return encrypt(secret.encode(), associated_data=SECRET_AAD)


def _open(blob, key_id: str) -> str:
    return decrypt(Ciphertext(key_id=key_id, blob=bytes(blob)), associated_data=SECRET_AAD).decode()


def endpoint_signing_keys(endpoint: WebhookEndpoint, *, now: datetime) -> list[bytes]:
    """The current secret, plus the previous one while a roll's overlap lasts."""
    keys = [signing.secret_key_bytes(_open(endpoint.secret_encrypted, endpoint.secret_key_id))]
    if (
        endpoint.previous_secret_encrypted
        and endpoint.previous_secret_expires_at
        and endpoint.previous_secret_expires_at > now
    ):
        previous = _open(endpoint.previous_secret_encrypted, endpoint.previous_secret_key_id)
        keys.append(signing.secret_key_bytes(previous))
    return keys


def _validate_url(url: str, *, livemode: bool) -> str:
    problem = url_safety.check(url, livemode=livemode)
    if problem is not None:
        raise InvalidRequestError(problem.message, code=problem.code, param="url")
    return url


def _validate_enabled_events(enabled_events) -> list[str]:
    if not isinstance(enabled_events, list) or not enabled_events:
        raise InvalidRequestError(
            "enabled_events must be a non-empty list of event types ('*' for all).",
            code="parameter_invalid",
            param="enabled_events",
        )
    for index, pattern in enumerate(enabled_events):
        if not isinstance(pattern, str) or not catalog.is_valid_pattern(pattern):
            raise InvalidRequestError(
                f"enabled_events[{index}]: {pattern!r} is not a known event type. Use an exact "
                "type such as 'payment_intent.succeeded', a wildcard such as "
                "'payment_intent.*', or '*'.",
                code="event_type_unknown",
                param=f"enabled_events[{index}]",
            )
    return list(dict.fromkeys(enabled_events))  # drop repeats, keep order


def webhook_endpoint_create(
    *,
    merchant,
    livemode: bool,
    url: str,
    enabled_events: list[str],
    actor: Actor,
    description: str = "",
    metadata: dict | None = None,
) -> IssuedEndpoint:
    url = _validate_url(url, livemode=livemode)
    enabled_events = _validate_enabled_events(enabled_events)
    secret = signing.new_signing_secret()
    sealed = _seal(secret)
    with transaction.atomic():
        # serializes endpoint creation per merchant, so the limit holds under races
        type(merchant).objects.select_for_update().filter(pk=merchant.pk).first()
        active = WebhookEndpoint.objects.filter(
            merchant=merchant, livemode=livemode, deleted_at__isnull=True
        ).count()
        if active >= conf("WEBHOOK_ENDPOINTS_MAX_PER_MODE"):
            raise InvalidRequestError(
                f"You can have at most {conf('WEBHOOK_ENDPOINTS_MAX_PER_MODE')} webhook "
                "endpoints in each mode.",
                code="webhook_endpoint_limit_reached",
            )
        endpoint = WebhookEndpoint.objects.create(
            merchant=merchant,
            livemode=livemode,
            url=url,
            description=description,
            enabled_events=enabled_events,
            metadata=metadata or {},
            secret_encrypted=sealed.blob,
            secret_key_id=sealed.key_id,
        )
        audit_record(
            actor=actor,
            action="webhook_endpoint.created",
            object_type="webhook_endpoint",
            object_id=endpoint.public_id,
            merchant_id=merchant.id,
            livemode=livemode,
            changes={"url": [None, url], "enabled_events": [None, enabled_events]},
        )
    return IssuedEndpoint(endpoint=endpoint, secret=secret)


def _lock_endpoint(endpoint_id: int) -> WebhookEndpoint:
    return WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)


def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    actor: Actor,
    url: str | None = None,
    enabled_events: list[str] | None = None,
    description: str | None = None,
    metadata: dict | None = None,
    disabled: bool | None = None,
) -> WebhookEndpoint:
    if url is not None:
        _validate_url(url, livemode=endpoint.livemode)
    if enabled_events is not None:
        enabled_events = _validate_enabled_events(enabled_events)
    with transaction.atomic():
        endpoint = _lock_endpoint(endpoint.pk)
        before = {
            "url": endpoint.url,
            "enabled_events": endpoint.enabled_events,
            "description": endpoint.description,
            "status": endpoint.status,
        }
        if url is not None:
            endpoint.url = url
        if enabled_events is not None:
            endpoint.enabled_events = enabled_events
        if description is not None:
            endpoint.description = description
        if metadata is not None:
            endpoint.metadata = {**endpoint.metadata, **metadata}
            endpoint.metadata = {k: v for k, v in endpoint.metadata.items() if v != ""}
        if disabled is True and endpoint.status == WebhookEndpoint.Status.ENABLED:
            endpoint.status = WebhookEndpoint.Status.DISABLED
            endpoint.disabled_reason = "disabled by the merchant"
        elif disabled is False and endpoint.status == WebhookEndpoint.Status.DISABLED:
            endpoint.status = WebhookEndpoint.Status.ENABLED
            endpoint.disabled_reason = ""
            endpoint.failing_since = None
        endpoint.save()
        after = {
            "url": endpoint.url,
            "enabled_events": endpoint.enabled_events,
            "description": endpoint.description,
            "status": endpoint.status,
        }
        changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
        if changes:
            audit_record(
                actor=actor,
                action="webhook_endpoint.updated",
                object_type="webhook_endpoint",
                object_id=endpoint.public_id,
                merchant_id=endpoint.merchant_id,
                livemode=endpoint.livemode,
                changes=changes,
            )
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, actor: Actor) -> WebhookEndpoint:
    """Soft delete: the endpoint stops receiving, its delivery history stays for ops."""
    with transaction.atomic():
        endpoint = _lock_endpoint(endpoint.pk)
        endpoint.deleted_at = timezone.now()
        endpoint.status = WebhookEndpoint.Status.DISABLED
        endpoint.disabled_reason = "deleted"
        endpoint.save()
        WebhookDelivery.objects.filter(endpoint=endpoint, status=D.PENDING).update(
            status=D.CANCELED, next_attempt_at=None
        )
        audit_record(
            actor=actor,
            action="webhook_endpoint.deleted",
            object_type="webhook_endpoint",
            object_id=endpoint.public_id,
            merchant_id=endpoint.merchant_id,
            livemode=endpoint.livemode,
        )
    return endpoint


def webhook_endpoint_roll_secret(
    *, endpoint: WebhookEndpoint, actor: Actor, expires_in_seconds: int | None = None
) -> IssuedEndpoint:
    """A new secret signs from now on; the old one also signs for `expires_in_seconds` (default
    24 h, 0 = stops at once), so receivers can switch without missing a webhook."""
    if expires_in_seconds is None:
        expires_in_seconds = conf("WEBHOOK_SECRET_ROLL_DEFAULT_SECONDS")
    maximum = conf("WEBHOOK_SECRET_ROLL_MAX_SECONDS")
    if (
        isinstance(expires_in_seconds, bool)
        or not isinstance(expires_in_seconds, int)
        or not 0 <= expires_in_seconds <= maximum
    ):
        raise InvalidRequestError(
            f"expires_in must be a whole number of seconds between 0 and {maximum}.",
            code="parameter_invalid",
            param="expires_in",
        )
    secret = signing.new_signing_secret()
    sealed = _seal(secret)
    with transaction.atomic():
        endpoint = _lock_endpoint(endpoint.pk)
        if expires_in_seconds:
            endpoint.previous_secret_encrypted = endpoint.secret_encrypted
            endpoint.previous_secret_key_id = endpoint.secret_key_id
            endpoint.previous_secret_expires_at = timezone.now() + timedelta(
                seconds=expires_in_seconds
            )
        else:
            endpoint.previous_secret_encrypted = None
            endpoint.previous_secret_key_id = ""
            endpoint.previous_secret_expires_at = None
        endpoint.secret_encrypted = sealed.blob
        endpoint.secret_key_id = sealed.key_id
        endpoint.save()
        audit_record(
            actor=actor,
            action="webhook_endpoint.secret_rolled",
            object_type="webhook_endpoint",
            object_id=endpoint.public_id,
            merchant_id=endpoint.merchant_id,
            livemode=endpoint.livemode,
            changes={"previous_secret_expires_in": [None, expires_in_seconds]},
        )
    return IssuedEndpoint(endpoint=endpoint, secret=secret)


def webhook_endpoints_disable_failing(*, now: datetime | None = None) -> int:
    """Beat task: an endpoint that has failed every delivery for days is disabled, its pending
    deliveries are dead-lettered (replayable once it is fixed), and the merchant gets a
    `webhook_endpoint.disabled` event (on its other endpoints, and in /v1/events)."""
    now = now or timezone.now()
    threshold = now - timedelta(seconds=conf("WEBHOOK_ENDPOINT_DISABLE_AFTER_SECONDS"))
    candidates = list(
        WebhookEndpoint.objects.filter(
            status=WebhookEndpoint.Status.ENABLED,
            deleted_at__isnull=True,
            failing_since__lte=threshold,
        ).values_list("pk", flat=True)
    )
    disabled = 0
    for endpoint_id in candidates:
        with transaction.atomic():
            endpoint = _lock_endpoint(endpoint_id)
            if endpoint.status != WebhookEndpoint.Status.ENABLED or not (
                endpoint.failing_since and endpoint.failing_since <= threshold
            ):
                continue
            days = (now - endpoint.failing_since).total_seconds() / 86400
            previous = {"status": endpoint.status}
            endpoint.status = WebhookEndpoint.Status.DISABLED
            endpoint.disabled_reason = f"every delivery failed for {days:.1f} days"
            endpoint.save()
            WebhookDelivery.objects.filter(endpoint=endpoint, status=D.PENDING).update(
                status=D.DEAD,
                dead_at=now,
                next_attempt_at=None,
                last_error="endpoint disabled after failing for days",
            )
            outbox_record(
                merchant_id=endpoint.merchant_id,
                livemode=endpoint.livemode,
                object_type="webhook_endpoint",
                object_id=endpoint.public_id,
                event_type="webhook_endpoint.disabled",
                payload=endpoint_representation(endpoint),
                previous_attributes=previous,
            )
            audit_record(
                actor=Actor.system("webhook_endpoint_disabler"),
                action="webhook_endpoint.disabled",
                object_type="webhook_endpoint",
                object_id=endpoint.public_id,
                merchant_id=endpoint.merchant_id,
                livemode=endpoint.livemode,
                changes={"status": ["enabled", "disabled"]},
            )
            disabled += 1
            logger.warning(
                "webhook endpoint %s disabled: %s", endpoint.public_id, endpoint.disabled_reason
            )
    return disabled


# --------------------------------------------------------------------------- deliveries


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


# --------------------------------------------------------------------------- inbound


def psp_webhook_enqueue_processing(*, webhook_id: int, countdown: float | None = None) -> None:
    """Hands a stored PSP notification to Celery. No publish retries: the PSP gets its fast
    2xx either way, and a row the broker never got is picked up by the beat sweep."""
    from apps.events.tasks import process_psp_webhook

    try:
        process_psp_webhook.apply_async((webhook_id,), countdown=countdown, retry=False)
    except Exception:
        logger.warning("broker unavailable: psp webhook %s waits for the sweep", webhook_id)
