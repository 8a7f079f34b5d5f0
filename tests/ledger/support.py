"""Helpers shared by the ledger tests: raw reads of the ledger tables and the invariants."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.ledger import chart, postings
from apps.ledger.chart import Leg
from apps.ledger.models import JournalTransaction, LedgerAccount, LedgerEntry
from apps.ledger.services import ledger_hold, ledger_post

CONNECTOR = "conn_test"
RECEIVABLE = chart.psp_receivable(CONNECTOR)


def row_counts() -> tuple[int, int, int]:
    return (
        JournalTransaction.objects.count(),
        LedgerEntry.objects.count(),
        LedgerAccount.objects.count(),
    )


def balances(merchant_id: int, currency: str = "eur", livemode: bool = False) -> dict[str, int]:
    return dict(
        LedgerAccount.objects.filter(
            merchant_id=merchant_id, currency=currency, livemode=livemode
        ).values_list("code", "posted_balance")
    )


def fund_available(merchant_id: int, amount: int, *, key: str, seller_id=None) -> None:
    """Gives a merchant (or seller) available funds: a capture, then its release."""
    pending = chart.MERCHANT_PENDING if seller_id is None else chart.seller_pending(seller_id)
    ledger_post(
        merchant_id=merchant_id,
        livemode=False,
        currency="eur",
        kind="capture",
        idempotency_key=f"{key}:capture",
        legs=[Leg.debit(RECEIVABLE, amount), Leg.credit(pending, amount)],
    )
    ledger_post(
        merchant_id=merchant_id,
        livemode=False,
        currency="eur",
        kind="funds_release",
        idempotency_key=f"{key}:release",
        legs=postings.funds_release_legs(amount=amount, seller_id=seller_id),
    )


def hold(
    merchant_id: int,
    amount: int,
    *,
    key: str,
    expires_in: timedelta | None = None,
    source_id: str | None = None,
):
    return ledger_hold(
        merchant_id=merchant_id,
        livemode=False,
        currency="eur",
        idempotency_key=key,
        legs=postings.authorization_legs(amount=amount),
        expires_at=timezone.now() + (expires_in or timedelta(days=7)),
        source_type="payment_intent",
        source_id=source_id or f"pi_{key}",
    )


def run_concurrently(functions: list[Callable[[], object]]) -> list[tuple[object, Exception]]:
    """Runs the callables in threads released together; returns (result, error) per callable.
    Every thread closes its own database connection."""
    barrier = threading.Barrier(len(functions))
    outcomes: list = [None] * len(functions)

    def run(index: int, function: Callable[[], object]) -> None:
        try:
            barrier.wait()
            outcomes[index] = (function(), None)
        except Exception as exc:  # collected for the test to assert on
            outcomes[index] = (None, exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, f)) for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


# ---- invariants, asserted after every ledger test (conftest) and by the tests themselves


def currency_totals() -> list[tuple]:
    """Per (mode, currency): signed posted total and pending debits minus credits; both 0."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT livemode, currency,
                   sum(CASE WHEN normal_balance = 'debit' THEN posted_balance
                            ELSE -posted_balance END),
                   sum(pending_debits) - sum(pending_credits)
            FROM ledger_account GROUP BY livemode, currency
            """
        )
        return cursor.fetchall()


def assert_zero_sums() -> None:
    for livemode, currency, posted, pending in currency_totals():
        assert posted == 0, f"{currency} ({livemode=}): posted balances net to {posted}"
        assert pending == 0, f"{currency} ({livemode=}): pending debits - credits = {pending}"


def assert_accounts_match_entries() -> None:
    """Balance = sum of entries; balance_after chain; versions 1..n without gaps."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT a.code, a.posted_balance, a.pending_debits, a.pending_credits, a.version,
                   coalesce(sum(CASE WHEN e.phase = 'posted' THEN
                       (CASE WHEN a.normal_balance = 'debit' THEN e.amount ELSE -e.amount END)
                       END), 0),
                   coalesce(sum(CASE WHEN e.phase = 'hold' AND e.amount > 0 THEN e.amount
                                     WHEN e.phase = 'release' AND e.amount < 0 THEN e.amount
                                     END), 0),
                   coalesce(sum(CASE WHEN e.phase = 'hold' AND e.amount < 0 THEN -e.amount
                                     WHEN e.phase = 'release' AND e.amount > 0 THEN -e.amount
                                     END), 0),
                   count(e.id)
            FROM ledger_account a LEFT JOIN ledger_entry e ON e.account_id = a.id
            GROUP BY a.id
            """
        )
        for code, balance, p_debits, p_credits, version, e_sum, e_pd, e_pc, n in cursor:
            assert (balance, p_debits, p_credits) == (e_sum, e_pd, e_pc), code
            assert version == n, f"{code}: version {version} but {n} entries"
        cursor.execute(
            """
            SELECT e.account_id, e.account_version, e.balance_after,
                   lag(e.account_version) OVER w, lag(e.balance_after) OVER w,
                   CASE WHEN e.phase <> 'posted' THEN 0
                        WHEN a.normal_balance = 'debit' THEN e.amount ELSE -e.amount END
            FROM ledger_entry e JOIN ledger_account a ON a.id = e.account_id
            WINDOW w AS (PARTITION BY e.account_id ORDER BY e.account_version)
            """
        )
        for account_id, version, after, prev_version, prev_after, delta in cursor:
            assert version == (prev_version or 0) + 1, f"account {account_id}: version gap"
            assert after == (prev_after or 0) + delta, f"account {account_id}: chain broken"


def assert_journals_balanced() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT transaction_id, currency, phase, sum(amount) FROM ledger_entry "
            "GROUP BY 1, 2, 3 HAVING sum(amount) <> 0"
        )
        assert cursor.fetchall() == []


# Transactional (commit-time triggers run for real) and flushing only the ledger's tables between
# tests: a full flush truncates every app's tables and costs about a second per test.
LEDGER_DB = pytest.mark.django_db(transaction=True, available_apps=["apps.ledger"])
