"""Inbound PSP webhooks: receive (store raw, verify, de-duplicate, ack) and process.

Receiving is the hot path of `POST /webhooks/psp/{connector_id}` and does as little as it can:
one INSERT of the raw request, the adapter's signature check, one UPDATE that doubles as the
de-duplication (a claim row, unique per (connector, PSP event id)), all in one transaction, and
a Celery publish after the commit. Processing happens in the
worker through `apps.intents.psp_notifications`; it is retried with backoff, then dead-lettered.
A row the broker never got (outage) or a worker dropped (crash) is picked up by the beat sweep."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.connectors import gateway
from apps.core import metrics
from apps.core.audit import Actor, audit_record
from apps.core.errors import ConflictError, InvalidRequestError, PlatformError
from apps.core.ids import new_public_id
from apps.events import selectors
from apps.events.conf import conf
from apps.events.models import InboundWebhook, InboundWebhookClaim
from apps.events.notifications import NotificationNotApplicableYet, notification_dispatch
from apps.events.services import psp_webhook_enqueue_processing
from apps.psp_adapters.contract import WebhookEvent, WebhookVerificationError

logger = logging.getLogger(__name__)
S = InboundWebhook.Status

# kept with the raw body: what verification needs, nothing that could be a credential
STORED_HEADERS = ("content-type", "content-length", "user-agent", "stripe-signature")


class PayloadTooLargeError(InvalidRequestError):
    http_status = 413
    default_code = "request_too_large"


class WebhookSignatureError(InvalidRequestError):
    default_code = "webhook_signature_invalid"


@dataclass(frozen=True)
class ConnectorContext:
    """What receiving needs of a connector, its secret decrypted once (the gateway's reader)."""

    pk: int
    public_id: str
    merchant_id: int
    livemode: bool
    connector_type: str
    reader: gateway.NotificationReader


_contexts: dict[str, tuple[float, ConnectorContext]] = {}


def _context_for(connector) -> ConnectorContext:
    return ConnectorContext(
        pk=connector.pk,
        public_id=connector.public_id,
        merchant_id=connector.merchant_id,
        livemode=connector.livemode,
        connector_type=connector.connector_type,
        reader=gateway.notification_reader(connector=connector),
    )


def _connector_context(public_id: str) -> ConnectorContext:
    """Cached per process for a few seconds (PSP_WEBHOOK_CONNECTOR_CACHE_SECONDS): the hot path
    then skips a query and a decryption; a rotated webhook secret applies within that time."""
    now = time.monotonic()
    cached = _contexts.get(public_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    context = _context_for(selectors.connector_for_webhooks(public_id=public_id))
    ttl = conf("PSP_WEBHOOK_CONNECTOR_CACHE_SECONDS")
    if ttl > 0:
        _contexts[public_id] = (now + ttl, context)
    return context


@dataclass(frozen=True)
class InboundReceipt:
    webhook: InboundWebhook
    duplicate: bool
    connector_type: str


def inbound_webhook_receive(
    *, connector_public_id: str, headers, body: bytes, remote_addr: str = ""
) -> InboundReceipt:
    """Stores the raw notification first, then verifies and de-duplicates it. Raises a
    PlatformError (400/404/413) for what must not be acknowledged."""
    connector = _connector_context(connector_public_id)
    limit = conf("PSP_WEBHOOK_MAX_BODY_BYTES")
    if len(body) > limit:
        raise PayloadTooLargeError(f"The webhook body is larger than {limit} bytes.")
    if not body:
        raise InvalidRequestError("The webhook body is empty.", code="webhook_payload_invalid")
    stored_headers = {name: headers[name] for name in STORED_HEADERS if headers.get(name)}
    # one transaction, one commit (one WAL flush) before the acknowledgement: the raw row is
    # its first write, and a rejection is committed with it
    crash: Exception | None = None
    with transaction.atomic():
        webhook = _insert_raw(
            connector=connector, headers=stored_headers, body=body, remote_addr=remote_addr
        )
        try:
            duplicate, rejection = _accept(webhook, connector=connector, headers=headers)
        except Exception as exc:  # a bug: keep the raw row (status received) for the sweep
            logger.exception("accepting psp webhook %s failed", webhook.public_id)
            crash = exc
    if crash is not None:
        metrics.psp_webhook(psp=connector.connector_type, result="error")
        raise crash
    if rejection is not None:
        metrics.psp_webhook(psp=connector.connector_type, result="rejected")
        raise rejection
    metrics.psp_webhook(
        psp=connector.connector_type, result="duplicate" if duplicate else "accepted"
    )
    if not duplicate:
        psp_webhook_enqueue_processing(webhook_id=webhook.pk)
    return InboundReceipt(
        webhook=webhook, duplicate=duplicate, connector_type=connector.connector_type
    )


_RAW_COLUMNS = (
    "public_id",
    "connector_id",
    "merchant_id",
    "livemode",
    "received_at",
    "remote_addr",
    "headers",
    "body",
    "body_sha256",
    "verification",
    "verification_error",
    "psp_event_id",
    "event_types",
    "status",
    "attempts",
    "retry_count",
    "next_attempt_at",
    "last_error",
    "outcome",
)


def _insert_raw(
    *, connector: ConnectorContext, headers: dict, body: bytes, remote_addr: str
) -> InboundWebhook:
    """The first write: the notification exactly as it arrived (one plain INSERT: this is the
    hot path, and the ORM's save machinery costs more CPU than the statement)."""
    now = timezone.now()
    webhook = InboundWebhook(
        public_id=new_public_id("whin"),
        connector_id=connector.pk,
        merchant_id=connector.merchant_id,
        livemode=connector.livemode,
        received_at=now,
        remote_addr=remote_addr[:64],
        headers=headers,
        body=body,
        body_sha256=hashlib.sha256(body).hexdigest(),
        next_attempt_at=now + timedelta(seconds=conf("PSP_WEBHOOK_SWEEP_GRACE_SECONDS")),
    )
    values = [getattr(webhook, column) for column in _RAW_COLUMNS]
    for index, column in enumerate(_RAW_COLUMNS):
        if column in ("headers", "event_types", "outcome"):
            values[index] = json.dumps(values[index])
    placeholders = ", ".join(
        "%s::jsonb" if c in ("headers", "event_types", "outcome") else "%s" for c in _RAW_COLUMNS
    )
    sql = (
        f"INSERT INTO {InboundWebhook._meta.db_table} ({', '.join(_RAW_COLUMNS)}) "
        f"VALUES ({placeholders}) RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        webhook.pk = cursor.fetchone()[0]
    return webhook


def _reject(webhook: InboundWebhook, *, verification: str, error: str) -> None:
    InboundWebhook.objects.filter(pk=webhook.pk).update(
        status=S.REJECTED,
        verification=verification,
        verification_error=error[:300] if verification == "failed" else "",
        last_error=error[:500],
        next_attempt_at=None,
    )


def _accept(webhook: InboundWebhook, *, connector, headers) -> tuple[bool, PlatformError | None]:
    """Verify, parse, de-duplicate: (is a duplicate, the rejection to answer with or None).
    A rejection is recorded on the row, which is kept."""
    body = bytes(webhook.body)
    try:
        json.loads(body)
    except (ValueError, UnicodeDecodeError):
        _reject(webhook, verification="pending", error="the body is not valid JSON")
        logger.warning(
            "psp webhook %s for %s rejected: body is not JSON",
            webhook.public_id,
            connector.public_id,
        )
        return False, InvalidRequestError(
            "The webhook body is not valid JSON.", code="webhook_payload_invalid"
        )
    try:
        connector.reader.verify(dict(headers), body)
    except WebhookVerificationError as exc:
        _reject(webhook, verification="failed", error=str(exc))
        # logged and counted (rows with verification=failed, per connector, in the admin)
        logger.warning(
            "psp webhook %s for %s rejected: %s", webhook.public_id, connector.public_id, exc
        )
        return False, WebhookSignatureError(f"Webhook signature verification failed: {exc}.")
    try:
        events = connector.reader.parse(body)
        _check_events(events)
    except ValueError as exc:
        _reject(webhook, verification="verified", error=str(exc))
        logger.warning(
            "psp webhook %s for %s rejected: %s", webhook.public_id, connector.public_id, exc
        )
        return False, InvalidRequestError(
            f"The webhook body is not a valid notification: {exc}.", code="webhook_payload_invalid"
        )
    event_id = "+".join(sorted(event.psp_event_id for event in events))[:255]
    return _claim_event_id(
        webhook, event_id=event_id, event_types=[e.event_type for e in events]
    ), None


def _claim_event_id(webhook: InboundWebhook, *, event_id: str, event_types: list[str]) -> bool:
    """One statement: claim (connector, PSP event id) and mark the row pending, or mark it a
    duplicate of the first copy. Returns True for a duplicate."""
    claims, table = InboundWebhookClaim._meta.db_table, InboundWebhook._meta.db_table
    first = "EXISTS (SELECT 1 FROM claim)"
    sql = f"""
        WITH claim AS (
            INSERT INTO {claims} (connector_id, psp_event_id, webhook_id)
            VALUES (%(connector)s, %(event)s, %(webhook)s)
            ON CONFLICT (connector_id, psp_event_id) DO NOTHING
            RETURNING webhook_id
        )
        UPDATE {table} SET
            status = CASE WHEN {first} THEN 'pending' ELSE 'duplicate' END,
            duplicate_of_id = CASE WHEN {first} THEN NULL ELSE (
                SELECT webhook_id FROM {claims}
                WHERE connector_id = %(connector)s AND psp_event_id = %(event)s) END,
            next_attempt_at = CASE WHEN {first} THEN next_attempt_at END,
            verification = 'verified', verification_error = '',
            psp_event_id = %(event)s, event_types = %(types)s::jsonb
        WHERE id = %(webhook)s
        RETURNING status"""
    params = {
        "connector": webhook.connector_id,
        "event": event_id,
        "webhook": webhook.pk,
        "types": json.dumps(event_types),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0] == S.DUPLICATE


def _check_events(events: list[WebhookEvent]) -> None:
    if not events:
        raise ValueError("it holds no events")
    for event in events:
        if not event.psp_event_id or event.psp_event_id.startswith(":"):
            raise ValueError("an event has no id")
        if event.event_type != "other" and not (event.psp_reference or event.attempt_id):
            raise ValueError("an event names no payment")


# --------------------------------------------------------------------------- processing


def _claim(webhook_id: int) -> bool:
    now = timezone.now()
    due = (
        Q(status=S.PENDING)
        | Q(status=S.RETRYING, next_attempt_at__lte=now)
        | Q(status=S.PROCESSING, locked_until__lt=now)  # its worker died
    )
    return bool(
        InboundWebhook.objects.filter(due, pk=webhook_id).update(
            status=S.PROCESSING,
            locked_until=now + timedelta(seconds=conf("PSP_WEBHOOK_LEASE_SECONDS")),
            attempts=F("attempts") + 1,
        )
    )


def inbound_webhook_process(*, webhook_id: int) -> InboundWebhook | None:
    """Applies a verified notification through the handler the owning app registered
    (apps.events.notifications). Transitions only move forward there; a stale notification is
    recorded with why it was ignored. A notification that cannot be applied yet (the payment's
    synchronous answer is not stored) or that fails is retried with backoff, then
    dead-lettered."""
    if not _claim(webhook_id):
        return None
    webhook = InboundWebhook.objects.select_related("connector").get(pk=webhook_id)
    results: list[dict] = []
    retry_reason = ""
    try:
        reader = gateway.notification_reader(connector=webhook.connector)
        for event in reader.parse(bytes(webhook.body)):
            try:
                outcome = notification_dispatch(connector_id=webhook.connector_id, event=event)
            except NotificationNotApplicableYet as exc:
                retry_reason = f"not applicable yet: {exc}"
                results.append(
                    {
                        "event": event.psp_event_id,
                        "type": event.event_type,
                        "result": "waiting",
                        "reason": str(exc),
                    }
                )
                continue
            results.append(
                {"event": event.psp_event_id, "type": event.event_type, **outcome.as_dict()}
            )
    except Exception as exc:
        logger.exception("processing psp webhook %s failed", webhook.public_id)
        retry_reason = f"{type(exc).__name__}: {exc}"
    attempt = webhook.attempts
    history = list(webhook.outcome) + [{"attempt": attempt, **r} for r in results]
    now = timezone.now()
    metrics.psp_webhook(
        psp=webhook.connector.connector_type,
        result="processed"
        if not retry_reason
        else (
            "dead"
            if webhook.retry_count + 1 > len(conf("PSP_WEBHOOK_RETRY_SECONDS"))
            else "retrying"
        ),
    )
    if not retry_reason:
        InboundWebhook.objects.filter(pk=webhook.pk, status=S.PROCESSING).update(
            status=S.PROCESSED,
            processed_at=now,
            locked_until=None,
            next_attempt_at=None,
            outcome=history,
            last_error="",
        )
    else:
        _schedule_retry(webhook, history=history, reason=retry_reason, now=now)
    webhook.refresh_from_db()
    return webhook


def _schedule_retry(webhook: InboundWebhook, *, history: list, reason: str, now) -> None:
    schedule = conf("PSP_WEBHOOK_RETRY_SECONDS")
    retry_count = webhook.retry_count + 1
    if retry_count > len(schedule):
        InboundWebhook.objects.filter(pk=webhook.pk, status=S.PROCESSING).update(
            status=S.DEAD,
            locked_until=None,
            next_attempt_at=None,
            outcome=history,
            retry_count=retry_count,
            last_error=reason[:500],
        )
        logger.error(
            "psp webhook %s dead-lettered after %d attempts: %s",
            webhook.public_id,
            webhook.attempts,
            reason,
        )
        return
    delay = schedule[retry_count - 1]
    InboundWebhook.objects.filter(pk=webhook.pk, status=S.PROCESSING).update(
        status=S.RETRYING,
        locked_until=None,
        next_attempt_at=now + timedelta(seconds=delay),
        outcome=history,
        retry_count=retry_count,
        last_error=reason[:500],
    )
    psp_webhook_enqueue_processing(webhook_id=webhook.pk, countdown=delay)


def inbound_webhooks_process_due(*, limit: int = 200) -> int:
    """Beat sweep: verified rows nobody processed (broker down when they arrived, worker
    crash), retries whose task was lost, and raw rows whose acceptance was interrupted."""
    now = timezone.now()
    due = list(
        InboundWebhook.objects.filter(
            Q(status__in=[S.PENDING, S.RETRYING, S.RECEIVED], next_attempt_at__lte=now)
            | Q(status=S.PROCESSING, locked_until__lt=now)
        )
        .order_by("next_attempt_at")
        .values_list("pk", "status")[:limit]
    )
    done = 0
    for webhook_id, status in due:
        if status == S.RECEIVED:
            _accept_again(webhook_id)
            continue
        if inbound_webhook_process(webhook_id=webhook_id) is not None:
            done += 1
    return done


def _accept_again(webhook_id: int) -> None:
    webhook = InboundWebhook.objects.select_related("connector").get(pk=webhook_id)
    duplicate, rejection = _accept(
        webhook, connector=_context_for(webhook.connector), headers=webhook.headers
    )
    if not duplicate and rejection is None:
        inbound_webhook_process(webhook_id=webhook_id)


def inbound_webhook_reprocess(*, webhook: InboundWebhook, actor: Actor) -> InboundWebhook:
    """Ops: process a dead-lettered (or already processed) notification again, now."""
    if webhook.status in (S.REJECTED, S.DUPLICATE, S.RECEIVED):
        raise ConflictError(
            f"A {webhook.status} webhook cannot be reprocessed.", code="webhook_not_reprocessable"
        )
    updated = InboundWebhook.objects.filter(
        pk=webhook.pk, status__in=[S.DEAD, S.PROCESSED, S.RETRYING, S.PENDING]
    ).update(status=S.PENDING, retry_count=0, next_attempt_at=timezone.now(), locked_until=None)
    if not updated:
        raise ConflictError(
            "This webhook is being processed right now.", code="webhook_in_progress"
        )
    audit_record(
        actor=actor,
        action="psp_webhook.reprocessed",
        object_type="inbound_webhook",
        object_id=webhook.public_id,
        merchant_id=webhook.merchant_id,
        livemode=webhook.livemode,
        changes={"status": [webhook.status, "pending"]},
    )
    return inbound_webhook_process(webhook_id=webhook.pk) or webhook
