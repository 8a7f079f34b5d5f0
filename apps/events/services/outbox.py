"""The transactional outbox: an event row written in the transaction that changes its object,
and the relay (outbox -> events -> deliveries, `apps/events/relay.py`) enqueued when that
transaction commits, once per transaction and, under load, once for many."""

from __future__ import annotations

import json
import logging
from functools import lru_cache

import redis
from django.db import connection, transaction
from django.utils import timezone

from apps.core.logging import get_request_id
from apps.core.redis_client import checkout_redis
from apps.events.conf import conf
from apps.events.middleware import get_idempotency_key
from apps.events.models import OutboxEvent

logger = logging.getLogger(__name__)


def outbox_record_change(
    *, obj, object_type: str, event_type: str, payload: dict, previous: dict | None = None
) -> OutboxEvent:
    """The outbox row of a change to one of a merchant's objects (an intent, a refund, a payout,
    a dispute…): its merchant, mode and public id come from the object itself."""
    return outbox_record(
        merchant_id=obj.merchant_id,
        livemode=obj.livemode,
        object_type=object_type,
        object_id=obj.public_id,
        event_type=event_type,
        payload=payload,
        previous_attributes=previous or {},
    )


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


def outbox_record_new_object(
    *, obj, object_type: str, events: list[tuple[str, dict, dict]]
) -> None:
    """The first events of an object created in this transaction, (event_type, payload,
    previous_attributes) in order, in one statement: their sequences are 1..n (the unique
    (object_id, sequence) constraint refuses anything else, so call it before any other event
    of the object)."""
    with connection.cursor() as cursor:
        cursor.execute(
            *outbox_new_object_statement(obj=obj, object_type=object_type, events=events)
        )
    outbox_relay_schedule()


def outbox_new_object_statement(
    *, obj, object_type: str, events: list[tuple[str, dict, dict]], when: str = ""
) -> tuple[str, list]:
    """`outbox_record_new_object` as (sql, params), for a caller that writes the rows inside its
    own single statement, as a data-modifying CTE written only if the relation `when` yields a
    row. The caller owes the relay: `outbox_relay_schedule()`."""
    rows = [
        _outbox_row(
            merchant_id=obj.merchant_id,
            livemode=obj.livemode,
            object_type=object_type,
            object_id=obj.public_id,
            event_type=event_type,
            payload=payload,
            previous_attributes=previous,
        )
        for event_type, payload, previous in events
    ]
    values = ", ".join(
        [
            "(%s::bigint, %s::boolean, %s, %s, %s::integer, %s, %s::jsonb, %s::jsonb, %s, %s, "
            "%s::timestamptz)"
        ]
        * len(rows)
    )
    params = []
    for sequence, row in enumerate(rows, start=1):
        params += [
            row.merchant_id,
            row.livemode,
            row.object_type,
            row.object_id,
            sequence,
            row.event_type,
            json.dumps(row.payload),
            json.dumps(row.previous_attributes),
            row.request_id,
            row.idempotency_key,
            row.created_at,
        ]
    columns = (
        "merchant_id, livemode, object_type, object_id, sequence, event_type, payload, "
        "previous_attributes, request_id, idempotency_key, created_at"
    )
    sql = f"""
INSERT INTO {OutboxEvent._meta.db_table} ({columns})
SELECT v.* FROM (VALUES {values}) AS v ({columns}){f", {when}" if when else ""}"""
    return sql, params


def outbox_record_select(*, select_sql: str, params) -> int:
    """One outbox row per row of a caller's SELECT, in one statement (issue 14: thousands of
    `reconciliation.discrepancy.created` at once). The SELECT yields, in this order:
    merchant_id, livemode, object_type, object_id, event_type, payload (jsonb), for objects
    created in this transaction: each row is its object's first event (sequence 1; the unique
    (object_id, sequence) constraint refuses anything else). Call inside the transaction that
    created the objects."""
    table = OutboxEvent._meta.db_table
    request_id = get_request_id() or ""
    idempotency_key = get_idempotency_key()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
INSERT INTO {table}
    (merchant_id, livemode, object_type, object_id, sequence, event_type, payload,
     previous_attributes, request_id, idempotency_key, created_at)
SELECT s.merchant_id, s.livemode, s.object_type, s.object_id, 1,
       s.event_type, s.payload, '{{}}'::jsonb, %s, %s, now()
FROM ({select_sql}) AS s (merchant_id, livemode, object_type, object_id, event_type, payload)""",
            [request_id, idempotency_key, *params],
        )
        written = cursor.rowcount
    if written:
        outbox_relay_schedule()
    return written


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
