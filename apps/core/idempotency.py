"""Idempotency keys, one mechanism for every mutating endpoint.

Scope: merchant + mode + key; the method and path are part of the record, so the same key on
another endpoint is refused (400 idempotency_error), as Stripe does. The first request claims the
key in its own committed transaction (so a concurrent twin sees the claim at once), runs, and
stores its status and exact body bytes. A replay gets those bytes back; a different payload under
the same key is a 400; a twin arriving while the first still runs is a 409 and stores nothing.
An error is stored only if the operation began: a database write of the request committed, or a
PSP call may have gone out (`effect_began`). An error before any effect (a validation error,
Redis or the database away) releases the key, so the client's corrected request or retry with
the same key runs the operation instead of being answered the same error forever.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.core.errors import (
    IdempotencyError,
    IdempotencyInFlightError,
    IdempotencyInterruptedError,
    InvalidRequestError,
)
from apps.core.models import AuditLogEntry, IdempotencyRecord

MAX_KEY_LENGTH = 255


@dataclass
class IdempotencyClaim:
    record_id: int


@dataclass
class IdempotencyReplay:
    status: int
    body: bytes


def validate_key(key: str) -> str:
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidRequestError(
            f"Idempotency-Key must be at most {MAX_KEY_LENGTH} characters.",
            code="idempotency_key_too_long",
            param="Idempotency-Key",
        )
    if not key.strip() or not key.isprintable():
        raise InvalidRequestError(
            "Idempotency-Key must be a non-empty printable string.",
            code="idempotency_key_invalid",
            param="Idempotency-Key",
        )
    return key


def request_fingerprint(*, method: str, path: str, payload) -> str:
    # canonical JSON: the same parameters in another key order or spacing are the same request.
    # Keyed (HMAC), because a body may hold a card number: a plain hash of a PAN whose BIN and
    # last4 are known could be brute-forced.
    canonical = json.dumps(
        {"method": method, "path": path, "payload": payload}, sort_keys=True, separators=(",", ":")
    )
    key = hashlib.sha256(b"idempotency-fingerprint:" + settings.SECRET_KEY.encode()).digest()
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def should_store(status: int, *, effects_began: bool = True) -> bool:
    """The outcome of an operation that began is stored, whatever it is: a success, a decline
    (402), a 4xx that came after something was written (a create whose confirm found no
    connector: replaying it must not create a second intent) or a 5xx. An error before any
    effect is not, so the client can fix the request, or retry after an outage, with the same
    key."""
    return status < 400 or status == 402 or effects_began


# --- did the request's operation begin? -----------------------------------------------------------


@dataclass
class _Effects:
    began: bool = False


_effects: ContextVar[_Effects | None] = ContextVar("idempotent_request_effects", default=None)


def effects_tracking_start() -> Token:
    """Starts recording, for the current request, whether its operation had an effect."""
    return _effects.set(_Effects())


def effects_tracking_stop(token: Token) -> bool:
    """Stops recording; returns whether an effect was recorded."""
    effects = _effects.get()
    _effects.reset(token)
    return bool(effects and effects.began)


def effect_began() -> None:
    """Marks the current idempotent request's operation as begun: a PSP call is about to go out,
    or one of its database writes committed. Outside such a request it does nothing."""
    effects = _effects.get()
    if effects is not None:
        effects.began = True


_WRITES = ("INSERT", "UPDATE", "DELETE")


def note_committed_writes(execute, sql, params, many, context):
    """A database execute wrapper (connection.execute_wrapper): a data-changing statement other
    than the idempotency claim's own marks the operation begun once its transaction commits
    (at once in autocommit). A write rolled back with its transaction marks nothing."""
    result = execute(sql, params, many, context)
    effects = _effects.get()
    if effects is not None and not effects.began:
        head = sql.lstrip()[:6].upper()
        writes = head in _WRITES or (
            head.startswith("WITH") and any(f" {w} " in sql.upper() for w in _WRITES)
        )
        if writes and "core_idempotencyrecord" not in sql:
            connection_ = context["connection"]
            if connection_.in_atomic_block:
                transaction.on_commit(effect_began, using=connection_.alias)
            else:
                effect_began()
    return result


_CLAIM_SQL = """
INSERT INTO core_idempotencyrecord
    (merchant_id, livemode, method, path, key, fingerprint, status, request_id,
     created_at, locked_at, expires_at)
VALUES (%s, %s, %s, %s, %s, %s, 'in_progress', %s, %s, %s, %s)
ON CONFLICT (merchant_id, livemode, key) DO NOTHING
RETURNING id
"""


def idempotency_claim(
    *,
    merchant_id: int,
    livemode: bool,
    method: str,
    path: str,
    key: str,
    fingerprint: str,
    request_id: str,
) -> IdempotencyClaim | IdempotencyReplay:
    now = timezone.now()
    expires_at = now + timedelta(hours=settings.IDEMPOTENCY_TTL_HOURS)
    args = (merchant_id, livemode, method, path, key, fingerprint, request_id, now, now, expires_at)
    # a new key, the common case: one INSERT on its own, which is a transaction by itself (no
    # BEGIN and COMMIT round trips); the twin that loses the race sees the committed claim
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, args)
        row = cursor.fetchone()
    if row:
        return IdempotencyClaim(record_id=row[0])

    with transaction.atomic():
        record = IdempotencyRecord.objects.select_for_update().get(
            merchant_id=merchant_id, livemode=livemode, key=key
        )
        stale_lock = now - timedelta(seconds=settings.IDEMPOTENCY_LOCK_TIMEOUT_SECONDS)
        if record.expires_at <= now:
            # expired but not yet purged: the key is free again, for any endpoint
            _reclaim(
                record,
                fingerprint=fingerprint,
                request_id=request_id,
                now=now,
                method=method,
                path=path,
            )
            return IdempotencyClaim(record_id=record.id)
        if (record.method, record.path) != (method, path):
            raise IdempotencyError(
                "Keys for idempotent requests can only be used for the same endpoint they were "
                f"first used for ('{record.method} {record.path}' vs '{method} {path}'). Use a "
                "new Idempotency-Key for a different request.",
                code="idempotency_key_reused",
                param="Idempotency-Key",
            )
        if record.fingerprint != fingerprint:
            raise IdempotencyError(
                "Keys for idempotent requests can only be used with the same parameters they "
                "were first used with. Use a new Idempotency-Key for a different request.",
                code="idempotency_key_reused",
                param="Idempotency-Key",
            )
        if record.status == IdempotencyRecord.Status.COMPLETED:
            return IdempotencyReplay(
                status=record.response_status, body=bytes(record.response_body)
            )
        if record.locked_at > stale_lock:
            raise IdempotencyInFlightError(
                "A request with this Idempotency-Key is still being processed. "
                "Retry after it completes.",
                param="Idempotency-Key",
            )
        # the first request died without finishing (a worker killed). Run again, it would
        # charge or refund a second time if it had begun: every change a request makes writes
        # its audit row, with the request's id, in the change's own transaction, so those rows
        # say whether it began. Only a request that changed nothing is taken over.
        changed = _changed_by(record)
        if changed:
            raise IdempotencyInterruptedError(
                "The first request with this Idempotency-Key was interrupted after it changed "
                + ", ".join(f"{kind} {public_id}" for kind, public_id in changed)
                + ". It is not run again, so nothing is charged or refunded twice: retrieve "
                "the object for its outcome, or use a new Idempotency-Key for a new request.",
                param="Idempotency-Key",
                extra={"objects": [public_id for _, public_id in changed]},
            )
        _reclaim(record, fingerprint=fingerprint, request_id=request_id, now=now)
        return IdempotencyClaim(record_id=record.id)


def _changed_by(record: IdempotencyRecord) -> list[tuple[str, str]]:
    """The objects an interrupted request changed, from its audit rows (object type, public id),
    in the order it changed them."""
    if not record.request_id:
        return []
    rows = (
        AuditLogEntry.objects.filter(request_id=record.request_id, merchant_id=record.merchant_id)
        .order_by("id")
        .values_list("object_type", "object_id")
    )
    return list(dict.fromkeys(rows))


def _reclaim(
    record: IdempotencyRecord,
    *,
    fingerprint: str,
    request_id: str,
    now,
    method: str | None = None,
    path: str | None = None,
) -> None:
    record.method = method or record.method
    record.path = path or record.path
    record.fingerprint = fingerprint
    record.status = IdempotencyRecord.Status.IN_PROGRESS
    record.response_status = None
    record.response_body = None
    record.request_id = request_id
    record.created_at = now
    record.locked_at = now
    record.expires_at = now + timedelta(hours=settings.IDEMPOTENCY_TTL_HOURS)
    record.save()


def idempotency_complete(
    *, claim: IdempotencyClaim, status: int, body: bytes, effects_began: bool = True
) -> None:
    if should_store(status, effects_began=effects_began):
        IdempotencyRecord.objects.filter(
            id=claim.record_id, status=IdempotencyRecord.Status.IN_PROGRESS
        ).update(
            status=IdempotencyRecord.Status.COMPLETED, response_status=status, response_body=body
        )
    else:
        IdempotencyRecord.objects.filter(
            id=claim.record_id, status=IdempotencyRecord.Status.IN_PROGRESS
        ).delete()


# --- the result stored in the operation's last transaction ----------------------------------------


@dataclass
class ResultInTransaction:
    """A request whose operation can store its own result in the transaction that ends it, so
    the state change and the answer a replay gets commit together (no window where the change
    is committed and the key still in progress), without a round trip of their own.
    `render`: the view's, from the operation's object to (status, body), or None when the
    response is not one to store there."""

    claim: IdempotencyClaim
    render: Callable[[object], tuple[int, bytes] | None]
    rendered: tuple[int, bytes] | None = None
    stored: tuple[int, bytes] | None = None


_result: ContextVar[ResultInTransaction | None] = ContextVar("idempotent_result", default=None)


@contextmanager
def idempotency_result_in_transaction(
    claim: IdempotencyClaim | None, render: Callable[[object], tuple[int, bytes] | None]
):
    """Around a service call (by the view that claimed the key): the service may store the
    response in its last transaction (`idempotency_result_statement`). Yields the
    ResultInTransaction, whose `stored` says what was committed; None without a claim."""
    if claim is None:
        yield None
        return
    pending = ResultInTransaction(claim=claim, render=render)
    token = _result.set(pending)
    try:
        yield pending
    finally:
        _result.reset(token)


def idempotency_result_statement(obj, *, when: str) -> tuple[str, list] | None:
    """For the service's last transaction: the request's response for `obj` stored on its key,
    as a data-modifying CTE written only if the relation `when` yields a row. None when the
    request has no key, or its response for `obj` is not one to store here. When the statement
    wrote it, the caller says so (`idempotency_result_written`) inside the transaction."""
    pending = _result.get()
    if pending is None or pending.stored is not None:
        return None
    rendered = pending.render(obj)
    if rendered is None:
        return None
    status, body = rendered
    table = IdempotencyRecord._meta.db_table
    sql = (
        f"UPDATE {table} SET status = %s, response_status = %s, response_body = %s"
        f" WHERE id = %s AND status = %s AND EXISTS (SELECT FROM {when})"
    )
    params = [
        IdempotencyRecord.Status.COMPLETED,
        status,
        body,
        pending.claim.record_id,
        IdempotencyRecord.Status.IN_PROGRESS,
    ]

    pending.rendered = rendered
    return sql, params


def idempotency_result_written() -> None:
    """The statement of `idempotency_result_statement` wrote the result: it is the request's
    stored answer once the transaction commits."""
    pending = _result.get()
    if pending is None or pending.rendered is None:
        return
    rendered = pending.rendered

    def committed() -> None:
        pending.stored = rendered

    transaction.on_commit(committed)


def idempotency_purge_expired(*, batch_size: int = 5000) -> int:
    """Removes expired records in batches (beat task), so the table stays small."""
    removed = 0
    while True:
        ids = list(
            IdempotencyRecord.objects.filter(expires_at__lte=timezone.now()).values_list(
                "id", flat=True
            )[:batch_size]
        )
        if not ids:
            return removed
        removed += IdempotencyRecord.objects.filter(id__in=ids).delete()[0]
