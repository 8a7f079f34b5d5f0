"""The posting engine: how one balanced, append-only journal is written, for every ledger
service (`_Journal` says what to write, `_execute` writes it).

How a journal is written (one DB transaction, retried on deadlock/serialization failure):
1. insert the journal row with `ON CONFLICT (idempotency_key) DO NOTHING`: a replay finds the
   original (same request hash: returned; another payload: `idempotency_key_reused`), and a
   concurrent twin waits on the unique index and then finds it;
2. lock the accounts with one `SELECT … ORDER BY id FOR UPDATE` (sorted order: no deadlock
   between postings); if an account does not exist yet, the attempt is rolled back and retried
   with the account opened first (`ON CONFLICT DO NOTHING`) in the same transaction;
3. compute balances, versions and `balance_after` in Python, refuse overdrafts with a clear code;
4. insert the entries and update the accounts in one statement;
5. at commit PostgreSQL re-checks everything (zero sums, holds, reversals, CHECKs).

Called inside the caller's transaction (the checkout plane's), a posting is a savepoint of it and
commits with it. Called outside any transaction, it runs its own, pipelined: BEGIN + step 1-2 in
one round trip, step 4 + COMMIT in the second.

The hot path uses SQL directly (server-side prepared): the ORM cannot express ON CONFLICT …
RETURNING or a batched UPDATE … FROM unnest(), and every round trip inside the row locks costs
throughput on a hot account.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from apps.core import metrics
from apps.core.errors import ApiError, ConflictError, IdempotencyError
from apps.core.ids import PUBLIC_ID_RANDOM_LENGTH
from apps.ledger import chart
from apps.ledger.models import JournalTransaction, LedgerEntry

logger = logging.getLogger(__name__)

Phase = LedgerEntry.Phase

MAX_ATTEMPTS = 12
_RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock_detected, serialization_failure


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _new_journal_id() -> str:
    """`txn_` + 24 base62 characters, as apps.core.ids makes them, from one urandom call
    (the per-character `secrets.choice` showed up in the benchmark profile)."""
    number = int.from_bytes(os.urandom(18), "big")  # 144 bits >= 24 base62 digits
    chars = []
    for _ in range(PUBLIC_ID_RANDOM_LENGTH):
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return "txn_" + "".join(chars)


def _int_array(values) -> str:
    # a PostgreSQL array literal: cheaper to send than psycopg's per-element list dumping
    return "{" + ",".join(str(int(v)) for v in values) + "}"


def _text_array(values) -> str:
    quoted = (v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return "{" + ",".join(f'"{v}"' for v in quoted) + "}"


@dataclass
class _Account:
    id: int
    code: str
    normal_balance: str
    allow_negative: bool
    posted_balance: int
    pending_debits: int
    pending_credits: int
    version: int

    @property
    def available(self) -> int:
        held = self.pending_debits if self.normal_balance == chart.CREDIT else self.pending_credits
        return self.posted_balance - held


Entry = tuple[str, int, str]  # (account code, signed amount, phase)


@dataclass
class _Journal:
    kind: str
    merchant_id: int
    livemode: bool
    currency: str
    idempotency_key: str
    request_hash: str
    metadata: dict
    entries: list[Entry] = field(default_factory=list)
    codes: tuple[str, ...] = ()  # accounts to lock; defaults to the entries' accounts
    source_type: str = ""
    source_id: str = ""
    description: str = ""
    resolves_id: int | None = None
    reverses_id: int | None = None
    settles_id: int | None = None
    expires_at: datetime | None = None
    created_at: datetime | None = None
    # computes the entries once the accounts are locked (settlement releases cap on balances)
    entries_after_lock: Callable[[dict[str, _Account]], list[Entry]] | None = None

    def lock_codes(self) -> list[str]:
        return sorted(set(self.codes) | {code for code, _, _ in self.entries})


class _MissingAccounts(Exception):
    def __init__(self, codes: set[str]) -> None:
        super().__init__(sorted(codes))
        self.codes = codes


# Round trip 1: insert the journal row and lock its accounts. ORDER BY id under FOR UPDATE locks
# the rows in id order, the same order for every posting, so postings cannot deadlock. Every row
# carries the new journal id, NULL when the key was already used (a replay); no row at all means
# an account is missing.
_OPEN_JOURNAL = """
WITH journal AS (
    INSERT INTO ledger_transaction (public_id, kind, merchant_id, livemode, currency,
        idempotency_key, request_hash, resolves_id, reverses_id, settles_id, expires_at,
        description, metadata, source_type, source_id, created_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
)
SELECT (SELECT id FROM journal), a.id, a.code, a.normal_balance, a.allow_negative,
       a.posted_balance, a.pending_debits, a.pending_credits, a.version
FROM ledger_account a
WHERE a.merchant_id = %s AND a.livemode = %s AND a.currency = %s
  AND a.code = ANY(%s::varchar[])
ORDER BY a.id
FOR UPDATE OF a
"""

# Round trip 2: the entries and the new account balances in one statement.
_WRITE_ENTRIES = """
WITH entries AS (
    INSERT INTO ledger_entry (transaction_id, account_id, amount, currency, phase,
        balance_after, account_version)
    SELECT %s, e.account_id, e.amount, %s, e.phase, e.balance_after, e.account_version
    FROM unnest(%s::bigint[], %s::bigint[], %s::varchar[], %s::bigint[], %s::bigint[])
        AS e(account_id, amount, phase, balance_after, account_version)
)
UPDATE ledger_account AS a
SET posted_balance = u.posted_balance, pending_debits = u.pending_debits,
    pending_credits = u.pending_credits, version = u.version, updated_at = %s
FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[])
    AS u(id, posted_balance, pending_debits, pending_credits, version)
WHERE a.id = u.id
"""

_CREATE_ACCOUNTS = """
INSERT INTO ledger_account (merchant_id, livemode, code, currency, kind, normal_balance,
    allow_negative, posted_balance, pending_debits, pending_credits, version, created_at,
    updated_at)
SELECT %s, %s, c.code, %s, c.kind, c.normal_balance, c.allow_negative, 0, 0, 0, 0, %s, %s
FROM unnest(%s::varchar[], %s::varchar[], %s::varchar[], %s::boolean[])
    AS c(code, kind, normal_balance, allow_negative)
ON CONFLICT (merchant_id, livemode, currency, code) DO NOTHING
"""


def _create_params(spec: _Journal, codes) -> list:
    codes = sorted(codes)  # a fixed order, so concurrent openers wait for each other in one order
    types = [chart.account_type(code) for code in codes]
    now = timezone.now()
    return [
        spec.merchant_id,
        spec.livemode,
        spec.currency,
        now,
        now,
        _text_array(codes),
        _text_array([t.kind for t in types]),
        _text_array([t.normal_balance for t in types]),
        "{" + ",".join("t" if t.allow_negative else "f" for t in types) + "}",
    ]


def _apply(entries: list[Entry], accounts: dict[str, _Account]) -> list[tuple]:
    """Moves the locked accounts' balances and versions; returns the entry rows to insert."""
    rows = []
    for code, amount, phase in entries:
        account = accounts[code]
        account.version += 1
        if phase == Phase.POSTED:
            account.posted_balance += amount if account.normal_balance == chart.DEBIT else -amount
        elif phase == Phase.HOLD:
            if amount > 0:
                account.pending_debits += amount
            else:
                account.pending_credits -= amount
        elif amount < 0:  # a release closes what a hold opened
            account.pending_debits += amount
        else:
            account.pending_credits -= amount
        rows.append((account.id, amount, phase, account.posted_balance, account.version))
    return rows


def _check_balances(accounts: list[_Account]) -> None:
    for account in accounts:
        if account.pending_debits < 0 or account.pending_credits < 0:
            raise ConflictError(
                f"Releasing more than is held on {account.code}.", code="hold_release_invalid"
            )
        if not account.allow_negative and min(account.posted_balance, account.available) < 0:
            raise ConflictError(
                f"Insufficient balance on {account.code}: the journal would take it to "
                f"{min(account.posted_balance, account.available)}.",
                code="insufficient_balance",
            )


def _journal_instance(spec: _Journal, *, pk: int, public_id: str) -> JournalTransaction:
    txn = JournalTransaction(
        id=pk,
        public_id=public_id,
        kind=spec.kind,
        merchant_id=spec.merchant_id,
        livemode=spec.livemode,
        currency=spec.currency,
        idempotency_key=spec.idempotency_key,
        request_hash=spec.request_hash,
        resolves_id=spec.resolves_id,
        reverses_id=spec.reverses_id,
        settles_id=spec.settles_id,
        expires_at=spec.expires_at,
        description=spec.description,
        metadata=spec.metadata,
        source_type=spec.source_type,
        source_id=spec.source_id,
        created_at=spec.created_at,
    )
    txn._state.adding = False
    txn._state.db = connection.alias
    return txn


def _replay(spec: _Journal) -> JournalTransaction:
    existing = JournalTransaction.objects.filter(idempotency_key=spec.idempotency_key).first()
    if existing is None:
        # the twin that held the key rolled back after our insert gave way: go again
        raise _Retry()
    if existing.request_hash != spec.request_hash:
        raise IdempotencyError(
            "This idempotency key was already used for a different ledger request.",
            code="idempotency_key_reused",
            param="idempotency_key",
        )
    return existing


class _Retry(Exception):
    pass


def _server_cursor() -> psycopg.Cursor:
    """A server-side-binding cursor whose statements PostgreSQL prepares once per session.
    Django binds client-side and turns preparing off (prepare_threshold=None); that setting only
    matters to server-side cursors, and the ledger's are the only ones, so it is switched on."""
    connection.ensure_connection()
    conn = connection.connection
    if conn.prepare_threshold is None:
        conn.prepare_threshold = 5
    return psycopg.Cursor(conn)


def _open_params(spec: _Journal, public_id: str, codes: list[str]) -> list:
    return [
        public_id,
        spec.kind,
        spec.merchant_id,
        spec.livemode,
        spec.currency,
        spec.idempotency_key,
        spec.request_hash,
        spec.resolves_id,
        spec.reverses_id,
        spec.settles_id,
        spec.expires_at,
        spec.description,
        json.dumps(spec.metadata),
        spec.source_type,
        spec.source_id,
        spec.created_at,
        spec.merchant_id,
        spec.livemode,
        spec.currency,
        _text_array(codes),
    ]


def _plan(spec: _Journal, cursor, locked: list, public_id: str):
    """From the locked account rows to what to write: (journal id, entry rows, accounts), or
    None for a replay. Refuses overdrafts; raises _MissingAccounts for accounts to open."""
    if locked and locked[0][0] is None:
        return None
    accounts = {r[2]: _Account(*r[1:]) for r in locked}
    missing = set(spec.lock_codes()) - set(accounts)
    if missing:
        raise _MissingAccounts(missing)
    if locked:
        txn_id = locked[0][0]
    else:  # no accounts to lock (a release with nothing left to release)
        cursor.execute(
            "SELECT id, public_id FROM ledger_transaction WHERE idempotency_key = %s",
            [spec.idempotency_key],
        )
        txn_id, stored_public_id = cursor.fetchone()
        if stored_public_id != public_id:
            return None
    entries = spec.entries
    if spec.entries_after_lock is not None:
        entries = spec.entries_after_lock(accounts)
    rows = _apply(entries, accounts)
    touched = [accounts[code] for code in {code for code, _, _ in entries}]
    _check_balances(touched)
    return txn_id, rows, touched


def _write_params(spec: _Journal, txn_id: int, rows: list, touched: list[_Account]) -> list:
    return [
        txn_id,
        spec.currency,
        _int_array(r[0] for r in rows),
        _int_array(r[1] for r in rows),
        _text_array([r[2] for r in rows]),
        _int_array(r[3] for r in rows),
        _int_array(r[4] for r in rows),
        spec.created_at,
        _int_array(a.id for a in touched),
        _int_array(a.posted_balance for a in touched),
        _int_array(a.pending_debits for a in touched),
        _int_array(a.pending_credits for a in touched),
        _int_array(a.version for a in touched),
    ]


def _write(spec: _Journal, *, open_accounts: set[str]) -> JournalTransaction:
    """One attempt inside a transaction Django manages (a savepoint in the caller's
    transaction). `open_accounts` are opened first, in this same transaction: a refused posting
    leaves no empty account behind, and as nothing else is locked yet, opening cannot
    deadlock."""
    spec.created_at = spec.created_at or timezone.now()
    public_id = _new_journal_id()
    codes = spec.lock_codes()
    with connection.wrap_database_errors, _server_cursor() as cursor:
        if open_accounts:
            cursor.execute(_CREATE_ACCOUNTS, _create_params(spec, open_accounts))
        cursor.execute(_OPEN_JOURNAL, _open_params(spec, public_id, codes), prepare=True)
        plan = _plan(spec, cursor, cursor.fetchall(), public_id)
        if plan is None:
            return _replay(spec)
        txn_id, rows, touched = plan
        if rows:
            cursor.execute(_WRITE_ENTRIES, _write_params(spec, txn_id, rows, touched), prepare=True)
    return _journal_instance(spec, pk=txn_id, public_id=public_id)


def _write_own_transaction(spec: _Journal, *, open_accounts: set[str]) -> JournalTransaction:
    """One attempt when no transaction is open (the caller is not in an atomic block): the
    ledger runs its own transaction on the connection in two pipelined round trips, BEGIN with
    the journal row and the account locks, then the writes with the COMMIT. That keeps the row
    locks of a hot account for one round trip instead of two."""
    spec.created_at = spec.created_at or timezone.now()
    public_id = _new_journal_id()
    codes = spec.lock_codes()
    with connection.wrap_database_errors:
        cursor = _server_cursor()
        conn = cursor.connection
        try:
            with conn.pipeline():
                cursor.execute("BEGIN")
                if open_accounts:
                    cursor.execute(_CREATE_ACCOUNTS, _create_params(spec, open_accounts))
                cursor.execute(_OPEN_JOURNAL, _open_params(spec, public_id, codes), prepare=True)
            plan = _plan(spec, cursor, cursor.fetchall(), public_id)
            if plan is None:
                conn.execute("ROLLBACK")
                return _replay(spec)
            txn_id, rows, touched = plan
            with conn.pipeline():
                if rows:
                    cursor.execute(
                        _WRITE_ENTRIES, _write_params(spec, txn_id, rows, touched), prepare=True
                    )
                cursor.execute("COMMIT")  # deferred triggers run here: errors surface here
        except BaseException:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
            raise
        finally:
            cursor.close()
    return _journal_instance(spec, pk=txn_id, public_id=public_id)


def _sqlstate(exc: Exception) -> str | None:
    return getattr(exc.__cause__, "sqlstate", None)


def _constraint(exc: Exception) -> str | None:
    return getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None)


_CONSTRAINT_ERRORS = {
    "ledger_transaction_resolves_once": lambda: ConflictError(
        "This hold is already resolved (captured, voided or expired).",
        code="hold_already_resolved",
    ),
    "ledger_transaction_reverses_once": lambda: ConflictError(
        "This transaction is already reversed.", code="transaction_already_reversed"
    ),
    "ledger_transaction_settles_once": lambda: ConflictError(
        "This capture's funds are already released.", code="funds_already_released"
    ),
    "ledger_account_non_negative": lambda: ConflictError(
        "Insufficient balance.", code="insufficient_balance"
    ),
}


def _count(spec: _Journal) -> None:
    metrics.ledger_posted(kind=spec.kind, livemode=spec.livemode)


def _execute(spec: _Journal) -> JournalTransaction:
    """Runs `_write` in its own transaction (a savepoint inside a caller's transaction), retrying
    deadlocks and serialization failures so that they never reach the caller."""
    attempt = 0
    missing: set[str] = set()
    while True:
        attempt += 1
        try:
            if connection.in_atomic_block or not connection.get_autocommit():
                with transaction.atomic():
                    journal = _write(spec, open_accounts=missing)
                # counted when the caller's transaction commits (an in-memory hook)
                transaction.on_commit(lambda: _count(spec))
                return journal
            journal = _write_own_transaction(spec, open_accounts=missing)
            _count(spec)
            return journal
        except _MissingAccounts as exc:
            missing |= exc.codes
            if attempt >= MAX_ATTEMPTS:
                raise ApiError("Ledger accounts could not be opened.", code="ledger_contention")
        except _Retry:
            if attempt >= MAX_ATTEMPTS:
                raise ApiError("The ledger is busy; retry the request.", code="ledger_contention")
        except OperationalError as exc:
            if _sqlstate(exc) not in _RETRYABLE_SQLSTATES:
                raise
            if attempt >= MAX_ATTEMPTS:
                raise ApiError(
                    "The ledger is busy; retry the request.", code="ledger_contention"
                ) from exc
            logger.info("ledger: retrying %s after %s (attempt %d)", spec.kind, exc, attempt)
            time.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 6)))  # jittered backoff
        except IntegrityError as exc:
            make_error = _CONSTRAINT_ERRORS.get(_constraint(exc) or "")
            if make_error is None:
                raise
            raise make_error() from exc
