"""Ledger writes: every money movement is one balanced, append-only journal.

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

import hashlib
import json
import logging
import os
import random
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from apps.core.errors import (
    ApiError,
    ConflictError,
    IdempotencyError,
    InvalidRequestError,
    NotFoundError,
    PlatformError,
)
from apps.core.ids import PUBLIC_ID_RANDOM_LENGTH
from apps.core.money import normalize_currency
from apps.ledger import chart
from apps.ledger.chart import Leg
from apps.ledger.models import (
    DriftCheckRun,
    DriftFinding,
    JournalTransaction,
    LedgerAccount,
    LedgerEntry,
)

logger = logging.getLogger(__name__)

Kind = JournalTransaction.Kind
Phase = LedgerEntry.Phase

# Far below 2**63 so that sums over many entries cannot overflow a bigint.
MAX_AMOUNT = 10**15
MAX_ATTEMPTS = 12
_RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock_detected, serialization_failure

# kinds that ledger_post may write; holds, resolutions and reversals have their own services
POSTABLE_KINDS = frozenset(Kind.values) - {
    Kind.AUTHORIZATION_HOLD,
    Kind.VOID,
    Kind.EXPIRY,
    Kind.REVERSAL,
    Kind.PAYOUT_FAILURE,
}


# --------------------------------------------------------------------------------------------
# validation


def _check_amount(amount, *, param: str = "amount", positive: bool = False) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidRequestError(
            "Amounts are integers in the currency's minor unit.", code="amount_invalid", param=param
        )
    if amount == 0:
        raise InvalidRequestError("Amount must not be zero.", code="amount_zero", param=param)
    if positive and amount < 0:
        raise InvalidRequestError(
            "Amount must be greater than zero.", code="amount_invalid", param=param
        )
    if abs(amount) > MAX_AMOUNT:
        raise InvalidRequestError(
            f"Amount must be at most {MAX_AMOUNT}.", code="amount_too_large", param=param
        )
    return amount


def _check_scope(merchant_id, livemode) -> None:
    if isinstance(merchant_id, bool) or not isinstance(merchant_id, int) or merchant_id <= 0:
        raise InvalidRequestError(
            "merchant_id must be a positive integer.", code="parameter_invalid", param="merchant_id"
        )
    if not isinstance(livemode, bool):
        raise InvalidRequestError(
            "livemode must be a boolean.", code="parameter_invalid", param="livemode"
        )


def _check_key(idempotency_key) -> str:
    if not isinstance(idempotency_key, str) or not idempotency_key.strip():
        raise InvalidRequestError(
            "An idempotency key is required.",
            code="idempotency_key_invalid",
            param="idempotency_key",
        )
    if len(idempotency_key) > 255:
        raise InvalidRequestError(
            "The idempotency key must be at most 255 characters.",
            code="idempotency_key_too_long",
            param="idempotency_key",
        )
    return idempotency_key


def _check_text(value, *, param: str, max_length: int) -> str:
    if not isinstance(value, str) or len(value) > max_length:
        raise InvalidRequestError(
            f"{param} must be a string of at most {max_length} characters.",
            code="parameter_invalid",
            param=param,
        )
    return value


def _check_metadata(metadata) -> dict:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise InvalidRequestError(
            "metadata must be an object with string keys.",
            code="parameter_invalid",
            param="metadata",
        )
    try:
        json.dumps(metadata)
    except (TypeError, ValueError):
        raise InvalidRequestError(
            "metadata must hold JSON values only.", code="parameter_invalid", param="metadata"
        )
    return metadata


def _check_legs(legs: Sequence[Leg], currency: str) -> list[tuple[str, int]]:
    if not isinstance(legs, list | tuple) or not legs:
        raise InvalidRequestError(
            "A journal needs at least one debit and one credit leg.",
            code="legs_missing",
            param="legs",
        )
    checked = []
    for index, leg in enumerate(legs):
        if not isinstance(leg, Leg):
            raise InvalidRequestError(
                "Each leg must be a ledger Leg.", code="leg_invalid", param=f"legs[{index}]"
            )
        chart.account_type(leg.account)
        _check_amount(leg.amount, param=f"legs[{index}].amount")
        if leg.currency is not None and str(leg.currency).lower() != currency:
            raise InvalidRequestError(
                f"Leg currency {leg.currency!r} does not match the account currency {currency!r}.",
                code="currency_mismatch",
                param=f"legs[{index}].currency",
            )
        checked.append((leg.account, leg.amount))
    debits = sum(a for _, a in checked if a > 0)
    credits = -sum(a for _, a in checked if a < 0)
    if debits != credits:
        raise InvalidRequestError(
            f"Legs do not balance: debits {debits} != credits {credits}.",
            code="journal_unbalanced",
            param="legs",
        )
    return checked


def _request_hash(payload: dict) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _load_journal(ref: JournalTransaction | str, *, param: str) -> JournalTransaction:
    if isinstance(ref, JournalTransaction):
        return ref
    found = None
    if isinstance(ref, str):
        found = JournalTransaction.objects.filter(public_id=ref).first()
    if found is None:
        raise NotFoundError(f"No such ledger transaction: {ref!r}.", param=param)
    return found


# --------------------------------------------------------------------------------------------
# the posting engine


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
                    return _write(spec, open_accounts=missing)
            return _write_own_transaction(spec, open_accounts=missing)
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


# --------------------------------------------------------------------------------------------
# public services


def ledger_accounts_open(
    *, merchant_id: int, livemode: bool, currency: str, codes: Sequence[str]
) -> dict[str, LedgerAccount]:
    """Get-or-create accounts (race-safe): {code: account}."""
    _check_scope(merchant_id, livemode)
    currency = normalize_currency(currency)
    for code in codes:
        chart.account_type(code)
    spec = _Journal(
        kind="",
        merchant_id=merchant_id,
        livemode=livemode,
        currency=currency,
        idempotency_key="",
        request_hash="",
        metadata={},
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_CREATE_ACCOUNTS, _create_params(spec, codes))
    accounts = LedgerAccount.objects.filter(
        merchant_id=merchant_id, livemode=livemode, currency=currency, code__in=list(codes)
    )
    return {a.code: a for a in accounts}


def ledger_post(
    *,
    merchant_id: int,
    livemode: bool,
    currency: str,
    kind: str,
    idempotency_key: str,
    legs: Sequence[Leg],
    metadata: dict | None = None,
    source_type: str = "",
    source_id: str = "",
    description: str = "",
) -> JournalTransaction:
    """Posts a balanced journal. Replaying the same key and payload returns the original."""
    _check_scope(merchant_id, livemode)
    currency = normalize_currency(currency)
    if kind not in POSTABLE_KINDS:
        raise InvalidRequestError(
            f"Kind {kind!r} cannot be posted directly.", code="kind_invalid", param="kind"
        )
    _check_key(idempotency_key)
    metadata = _check_metadata(metadata)
    _check_text(source_type, param="source_type", max_length=40)
    _check_text(source_id, param="source_id", max_length=80)
    _check_text(description, param="description", max_length=255)
    checked = _check_legs(legs, currency)
    request_hash = _request_hash(
        {
            "op": "post",
            "kind": kind,
            "merchant_id": merchant_id,
            "livemode": livemode,
            "currency": currency,
            "legs": checked,
            "metadata": metadata,
            "source": [source_type, source_id],
            "description": description,
        }
    )
    return _execute(
        _Journal(
            kind=kind,
            merchant_id=merchant_id,
            livemode=livemode,
            currency=currency,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            metadata=metadata,
            entries=[(code, amount, Phase.POSTED) for code, amount in checked],
            source_type=source_type,
            source_id=source_id,
            description=description,
        )
    )


def ledger_hold(
    *,
    merchant_id: int,
    livemode: bool,
    currency: str,
    idempotency_key: str,
    legs: Sequence[Leg],
    expires_at: datetime,
    metadata: dict | None = None,
    source_type: str = "",
    source_id: str = "",
    description: str = "",
) -> JournalTransaction:
    """Opens a pending hold (an authorization): the legs move pending debits/credits only,
    until a capture, void or expiry resolves the hold exactly once."""
    _check_scope(merchant_id, livemode)
    currency = normalize_currency(currency)
    _check_key(idempotency_key)
    metadata = _check_metadata(metadata)
    _check_text(source_type, param="source_type", max_length=40)
    _check_text(source_id, param="source_id", max_length=80)
    _check_text(description, param="description", max_length=255)
    if not isinstance(expires_at, datetime) or timezone.is_naive(expires_at):
        raise InvalidRequestError(
            "expires_at must be a timezone-aware datetime.",
            code="parameter_invalid",
            param="expires_at",
        )
    checked = _check_legs(legs, currency)
    request_hash = _request_hash(
        {
            "op": "hold",
            "merchant_id": merchant_id,
            "livemode": livemode,
            "currency": currency,
            "legs": checked,
            "expires_at": expires_at.isoformat(),
            "metadata": metadata,
            "source": [source_type, source_id],
            "description": description,
        }
    )
    return _execute(
        _Journal(
            kind=Kind.AUTHORIZATION_HOLD,
            merchant_id=merchant_id,
            livemode=livemode,
            currency=currency,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            metadata=metadata,
            entries=[(code, amount, Phase.HOLD) for code, amount in checked],
            source_type=source_type,
            source_id=source_id,
            description=description,
            expires_at=expires_at,
        )
    )


def _hold_entries(hold: JournalTransaction) -> list[tuple[str, int]]:
    return list(
        LedgerEntry.objects.filter(transaction_id=hold.pk, phase=Phase.HOLD)
        .order_by("id")
        .values_list("account__code", "amount")
    )


def _resolve_hold(
    *,
    hold: JournalTransaction | str,
    kind: str,
    idempotency_key: str,
    amount: int | None = None,
    legs: Sequence[Leg] = (),
    metadata: dict | None,
    source_type: str,
    source_id: str,
    description: str,
) -> JournalTransaction:
    hold = _load_journal(hold, param="hold")
    if hold.kind != Kind.AUTHORIZATION_HOLD:
        raise InvalidRequestError(
            f"{hold.public_id} is a {hold.kind}, not a hold.", code="not_a_hold", param="hold"
        )
    _check_key(idempotency_key)
    metadata = _check_metadata(metadata)
    _check_text(source_type, param="source_type", max_length=40)
    _check_text(source_id, param="source_id", max_length=80)
    _check_text(description, param="description", max_length=255)
    checked: list[tuple[str, int]] = []
    if kind == Kind.CAPTURE:
        _check_amount(amount, positive=True)
        checked = _check_legs(legs, hold.currency)
        if sum(a for _, a in checked if a > 0) != amount:
            raise InvalidRequestError(
                f"The capture legs must move exactly the captured amount {amount}.",
                code="legs_amount_mismatch",
                param="legs",
            )
    request_hash = _request_hash(
        {
            "op": kind,
            "hold": hold.public_id,
            "amount": amount,
            "legs": checked,
            "metadata": metadata,
            "source": [source_type, source_id],
            "description": description,
        }
    )
    spec = _Journal(
        kind=kind,
        merchant_id=hold.merchant_id,
        livemode=hold.livemode,
        currency=hold.currency,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        metadata=metadata,
        source_type=source_type,
        source_id=source_id,
        description=description,
        resolves_id=hold.pk,
    )
    # a replay must return the original even though the hold is resolved by now
    if JournalTransaction.objects.filter(idempotency_key=idempotency_key).exists():
        return _replay(spec)

    held_entries = _hold_entries(hold)
    held = sum(a for _, a in held_entries if a > 0)
    if kind == Kind.CAPTURE and amount > held:
        raise InvalidRequestError(
            f"Cannot capture {amount}: the hold is for {held}.",
            code="capture_exceeds_hold",
            param="amount",
        )
    resolution = JournalTransaction.objects.filter(resolves_id=hold.pk).first()
    if resolution is not None:
        raise ConflictError(
            f"This hold is already resolved by a {resolution.kind} ({resolution.public_id}).",
            code="hold_already_resolved",
        )
    now = timezone.now()
    if kind == Kind.CAPTURE and now >= hold.expires_at:
        raise ConflictError("This hold has expired and cannot be captured.", code="hold_expired")
    if kind == Kind.EXPIRY and now < hold.expires_at:
        raise ConflictError(
            f"This hold expires at {hold.expires_at.isoformat()}.", code="hold_not_expired"
        )
    spec.created_at = now
    spec.entries = [(code, -a, Phase.RELEASE) for code, a in held_entries] + [
        (code, a, Phase.POSTED) for code, a in checked
    ]
    return _execute(spec)


def ledger_capture_hold(
    *,
    hold: JournalTransaction | str,
    amount: int,
    legs: Sequence[Leg],
    idempotency_key: str,
    metadata: dict | None = None,
    source_type: str = "",
    source_id: str = "",
    description: str = "",
) -> JournalTransaction:
    """Captures at most the held amount: releases the whole hold and posts `legs`, whose debits
    must total `amount`. The uncaptured rest is simply released (one capture per hold)."""
    return _resolve_hold(
        hold=hold,
        kind=Kind.CAPTURE,
        idempotency_key=idempotency_key,
        amount=amount,
        legs=legs,
        metadata=metadata,
        source_type=source_type,
        source_id=source_id,
        description=description,
    )


def ledger_void_hold(
    *,
    hold: JournalTransaction | str,
    idempotency_key: str,
    reason: str = "",
    metadata: dict | None = None,
    source_type: str = "",
    source_id: str = "",
) -> JournalTransaction:
    """Releases the whole hold without posting anything (authorization canceled)."""
    return _resolve_hold(
        hold=hold,
        kind=Kind.VOID,
        idempotency_key=idempotency_key,
        metadata=metadata,
        source_type=source_type,
        source_id=source_id,
        description=reason,
    )


def ledger_expire_hold(
    *,
    hold: JournalTransaction | str,
    idempotency_key: str | None = None,
    metadata: dict | None = None,
) -> JournalTransaction:
    """Releases a hold whose `expires_at` has passed. The key defaults to one per hold."""
    hold = _load_journal(hold, param="hold")
    return _resolve_hold(
        hold=hold,
        kind=Kind.EXPIRY,
        idempotency_key=idempotency_key or f"{hold.public_id}:expiry",
        metadata=metadata,
        source_type=hold.source_type,
        source_id=hold.source_id,
        description="authorization expired",
    )


def ledger_reverse(
    *,
    transaction: JournalTransaction | str,
    idempotency_key: str,
    reason: str,
    kind: str = Kind.REVERSAL,
    metadata: dict | None = None,
) -> JournalTransaction:
    """Posts the exact negation of a journal, once. Holds are voided, not reversed; a reversal
    is not reversed again (post the movement anew instead). A failed payout is
    `kind="payout_failure"`: the payout reversed back to the available balance."""
    original = _load_journal(transaction, param="transaction")
    if kind not in JournalTransaction.REVERSAL_KINDS:
        raise InvalidRequestError(f"{kind!r} is not a reversal kind.", code="kind_invalid")
    _check_key(idempotency_key)
    metadata = _check_metadata(metadata)
    _check_text(reason, param="reason", max_length=255)
    spec = _Journal(
        kind=kind,
        merchant_id=original.merchant_id,
        livemode=original.livemode,
        currency=original.currency,
        idempotency_key=idempotency_key,
        request_hash=_request_hash(
            {"op": kind, "reverses": original.public_id, "reason": reason, "metadata": metadata}
        ),
        metadata=metadata,
        source_type=original.source_type,
        source_id=original.source_id,
        description=reason,
        reverses_id=original.pk,
    )
    if JournalTransaction.objects.filter(idempotency_key=idempotency_key).exists():
        return _replay(spec)
    if original.kind in JournalTransaction.REVERSAL_KINDS:
        raise ConflictError("A reversal cannot be reversed.", code="reversal_not_allowed")
    entries = list(
        LedgerEntry.objects.filter(transaction_id=original.pk)
        .order_by("id")
        .values_list("account__code", "amount", "phase")
    )
    if any(phase != Phase.POSTED for _, _, phase in entries):
        raise ConflictError(
            "Holds and their resolutions are voided, not reversed.", code="reversal_not_allowed"
        )
    if JournalTransaction.objects.filter(reverses_id=original.pk).exists():
        raise ConflictError(
            "This transaction is already reversed.", code="transaction_already_reversed"
        )
    spec.entries = [(code, -amount, Phase.POSTED) for code, amount, _ in entries]
    return _execute(spec)


def ledger_release_pending_to_available(
    *,
    merchant_id: int,
    livemode: bool,
    currency: str,
    amount: int,
    idempotency_key: str,
    seller_id: str | int | None = None,
    metadata: dict | None = None,
    source_type: str = "",
    source_id: str = "",
) -> JournalTransaction:
    """Moves settled funds from pending to available (merchant, or one seller)."""
    _check_amount(amount, positive=True)
    pending = chart.MERCHANT_PENDING if seller_id is None else chart.seller_pending(seller_id)
    return ledger_post(
        merchant_id=merchant_id,
        livemode=livemode,
        currency=currency,
        kind=Kind.FUNDS_RELEASE,
        idempotency_key=idempotency_key,
        legs=[Leg.debit(pending, amount), Leg.credit(chart.available_for(pending), amount)],
        metadata=metadata,
        source_type=source_type,
        source_id=source_id,
    )


def _release_capture(capture: JournalTransaction) -> JournalTransaction:
    """Makes a capture's pending credits available. Each release is capped at the pending
    balance at that moment, so refunds and disputes taken from pending funds before the release
    reduce what becomes available (and a negative pending balance nets against later captures)."""
    credited: dict[str, int] = defaultdict(int)
    for code, amount in LedgerEntry.objects.filter(
        transaction_id=capture.pk, phase=Phase.POSTED, amount__lt=0
    ).values_list("account__code", "amount"):
        if chart.is_pending_funds(code):
            credited[code] -= amount

    def entries_after_lock(accounts: dict[str, _Account]) -> list[Entry]:
        entries: list[Entry] = []
        for code in sorted(credited):
            release = min(credited[code], max(0, accounts[code].posted_balance))
            if release > 0:
                entries.append((code, release, Phase.POSTED))
                entries.append((chart.available_for(code), -release, Phase.POSTED))
        return entries

    codes = tuple(credited) + tuple(chart.available_for(code) for code in credited)
    return _execute(
        _Journal(
            kind=Kind.FUNDS_RELEASE,
            merchant_id=capture.merchant_id,
            livemode=capture.livemode,
            currency=capture.currency,
            idempotency_key=f"{capture.public_id}:funds_release",
            request_hash=_request_hash({"op": "funds_release", "settles": capture.public_id}),
            metadata={"capture": capture.public_id},
            codes=codes,
            source_type=capture.source_type,
            source_id=capture.source_id,
            settles_id=capture.pk,
            entries_after_lock=entries_after_lock,
        )
    )


def ledger_release_settled(
    *,
    delays_by_connector: Mapping[str, int],
    default_delay_seconds: int,
    now: datetime | None = None,
    batch_size: int = 500,
) -> int:
    """Releases the pending funds of every capture older than its connector's settlement delay
    (seconds; the connector is the one whose receivable the capture debited). Returns how many
    captures were released. Reversed captures are skipped: their funds went back already."""
    now = now or timezone.now()
    receivables = {chart.psp_receivable(c): int(d) for c, d in delays_by_connector.items()}
    due = (
        JournalTransaction.objects.filter(kind=Kind.CAPTURE)
        .filter(~Exists(JournalTransaction.objects.filter(settles_id=OuterRef("pk"))))
        .filter(~Exists(JournalTransaction.objects.filter(reverses_id=OuterRef("pk"))))
        .order_by("created_at", "id")
    )

    def on_receivable(codes):
        return Exists(
            LedgerEntry.objects.filter(transaction_id=OuterRef("pk"), account__code__in=codes)
        )

    batches = [
        due.filter(on_receivable([code]), created_at__lte=now - timedelta(seconds=delay))
        for code, delay in receivables.items()
    ]
    batches.append(
        due.filter(created_at__lte=now - timedelta(seconds=int(default_delay_seconds))).exclude(
            on_receivable(list(receivables))
        )
    )
    released = 0
    for batch in batches:
        for capture in batch[:batch_size]:
            try:
                _release_capture(capture)
                released += 1
            except PlatformError:
                # one capture must not block the others; the next run tries it again
                logger.exception("ledger: could not release capture %s", capture.public_id)
    return released


# --------------------------------------------------------------------------------------------
# drift check

_ACCOUNT_TOTALS = """
SELECT a.id, a.merchant_id, a.currency, a.normal_balance, a.posted_balance, a.pending_debits,
       a.pending_credits, a.version,
       coalesce(e.posted, 0), coalesce(e.pending_debits, 0), coalesce(e.pending_credits, 0),
       coalesce(e.entries, 0), coalesce(e.max_version, 0)
FROM ledger_account a
LEFT JOIN (
    SELECT account_id,
           sum(amount) FILTER (WHERE phase = 'posted') AS posted,
           sum(CASE WHEN phase = 'hold' AND amount > 0 THEN amount
                    WHEN phase = 'release' AND amount < 0 THEN amount ELSE 0 END) AS pending_debits,
           sum(CASE WHEN phase = 'hold' AND amount < 0 THEN -amount
                    WHEN phase = 'release' AND amount > 0 THEN -amount ELSE 0 END)
               AS pending_credits,
           count(*) AS entries,
           max(account_version) AS max_version
    FROM ledger_entry GROUP BY account_id
) e ON e.account_id = a.id
ORDER BY a.id
"""

_CHAIN_BREAKS = """
SELECT account_id, merchant_id, currency, account_version, prev_version, balance_after, expected
FROM (
    SELECT e.account_id, a.merchant_id, a.currency, e.account_version, e.balance_after,
           lag(e.account_version) OVER w AS prev_version,
           coalesce(lag(e.balance_after) OVER w, 0)
             + CASE WHEN e.phase <> 'posted' THEN 0
                    WHEN a.normal_balance = 'debit' THEN e.amount ELSE -e.amount END AS expected
    FROM ledger_entry e JOIN ledger_account a ON a.id = e.account_id
    WINDOW w AS (PARTITION BY e.account_id ORDER BY e.account_version)
) chain
WHERE balance_after <> expected OR account_version <> coalesce(prev_version, 0) + 1
ORDER BY account_id, account_version
LIMIT %s
"""

_UNBALANCED_JOURNALS = """
SELECT e.transaction_id, t.merchant_id, e.currency, e.phase, sum(e.amount)
FROM ledger_entry e JOIN ledger_transaction t ON t.id = e.transaction_id
GROUP BY e.transaction_id, t.merchant_id, e.currency, e.phase
HAVING sum(e.amount) <> 0
ORDER BY e.transaction_id
LIMIT %s
"""

_CURRENCY_TOTALS = """
SELECT livemode, currency,
       sum(CASE WHEN normal_balance = 'debit' THEN posted_balance ELSE -posted_balance END),
       sum(pending_debits) - sum(pending_credits)
FROM ledger_account
GROUP BY livemode, currency
"""

MAX_FINDINGS_PER_CHECK = 1000


def ledger_check_drift() -> DriftCheckRun:
    """Recomputes every account from its entries (posted balance, pending amounts, version),
    walks each account's balance_after/version chain, re-checks every journal's zero sums and
    each currency's trial balance. Stores the run and its findings."""
    run = DriftCheckRun.objects.create()
    findings: list[DriftFinding] = []
    Finding = DriftFinding.Kind

    def add(kind, detail, **fields) -> None:
        findings.append(DriftFinding(run=run, kind=kind, detail=detail[:255], **fields))

    accounts = entries = 0
    with connection.cursor() as cursor:
        cursor.execute(_ACCOUNT_TOTALS)
        for row in cursor.fetchall():
            account_id, merchant_id, currency, normal, balance, p_debits, p_credits = row[:7]
            version, posted_sum, e_debits, e_credits, count, max_version = row[7:]
            accounts += 1
            entries += count
            expected = posted_sum if normal == chart.DEBIT else -posted_sum
            where = {"account_id": account_id, "merchant_id": merchant_id, "currency": currency}
            if balance != expected:
                add(
                    Finding.POSTED_BALANCE,
                    f"posted balance {balance}, entries say {expected}",
                    expected=expected,
                    actual=balance,
                    **where,
                )
            if (p_debits, p_credits) != (e_debits, e_credits):
                add(
                    Finding.PENDING,
                    f"pending {p_debits}/{p_credits}, entries say {e_debits}/{e_credits}",
                    expected=e_debits - e_credits,
                    actual=p_debits - p_credits,
                    **where,
                )
            if not version == count == max_version:
                add(
                    Finding.VERSION,
                    f"version {version}, {count} entries, highest entry version {max_version}",
                    expected=count,
                    actual=version,
                    **where,
                )

        cursor.execute(_CHAIN_BREAKS, [MAX_FINDINGS_PER_CHECK])
        for account_id, merchant_id, currency, version, prev, after, expected in cursor.fetchall():
            where = {"account_id": account_id, "merchant_id": merchant_id, "currency": currency}
            if version != (prev or 0) + 1:
                add(
                    Finding.VERSION_GAP,
                    f"entry version {version} follows {prev or 0}",
                    expected=(prev or 0) + 1,
                    actual=version,
                    **where,
                )
            else:
                add(
                    Finding.CHAIN,
                    f"balance_after {after} at version {version}, chain says {expected}",
                    expected=expected,
                    actual=after,
                    **where,
                )

        cursor.execute(_UNBALANCED_JOURNALS, [MAX_FINDINGS_PER_CHECK])
        for txn_id, merchant_id, currency, phase, total in cursor.fetchall():
            add(
                Finding.UNBALANCED_TRANSACTION,
                f"{phase} entries in {currency} sum to {total}",
                transaction_id=txn_id,
                merchant_id=merchant_id,
                currency=currency,
                expected=0,
                actual=total,
            )

        cursor.execute(_CURRENCY_TOTALS)
        for livemode, currency, posted, pending in cursor.fetchall():
            mode = "live" if livemode else "test"
            if posted != 0:
                add(
                    Finding.CURRENCY_TOTAL,
                    f"{mode} {currency}: posted balances net to {posted}",
                    currency=currency,
                    expected=0,
                    actual=posted,
                )
            if pending != 0:
                add(
                    Finding.CURRENCY_TOTAL,
                    f"{mode} {currency}: pending debits exceed pending credits by {pending}",
                    currency=currency,
                    expected=0,
                    actual=pending,
                )
        cursor.execute("SELECT count(*) FROM ledger_transaction")
        (journals,) = cursor.fetchone()

    DriftFinding.objects.bulk_create(findings)
    run.finished_at = timezone.now()
    run.status = DriftCheckRun.Status.DRIFT if findings else DriftCheckRun.Status.CLEAN
    run.accounts_checked = accounts
    run.entries_checked = entries
    run.transactions_checked = journals
    run.findings_count = len(findings)
    run.save()
    if findings:
        logger.error("ledger: drift check %s found %d problem(s)", run.pk, len(findings))
    return run
