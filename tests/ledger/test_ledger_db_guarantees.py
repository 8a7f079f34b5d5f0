"""PostgreSQL itself keeps the journal balanced and append-only, whatever the code path."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError

from apps.ledger import chart
from apps.ledger.chart import Leg
from apps.ledger.models import JournalTransaction, LedgerAccount, LedgerEntry
from apps.ledger.services import ledger_accounts_open, ledger_post
from apps.ledger.services.engine import _execute, _Journal
from tests.ledger.support import LEDGER_DB, RECEIVABLE, hold, row_counts

pytestmark = LEDGER_DB


def _capture(merchant_id: int, key: str, amount: int = 1000) -> JournalTransaction:
    return ledger_post(
        merchant_id=merchant_id,
        livemode=False,
        currency="eur",
        kind="capture",
        idempotency_key=key,
        legs=[Leg.debit(RECEIVABLE, amount), Leg.credit(chart.MERCHANT_PENDING, amount)],
    )


def _raw_journal(cursor, merchant_id: int, key: str) -> int:
    cursor.execute(
        """
        INSERT INTO ledger_transaction (public_id, kind, merchant_id, livemode, currency,
            idempotency_key, request_hash, description, metadata, source_type, source_id,
            created_at)
        VALUES (%s, 'adjustment', %s, false, 'eur', %s, '', '', '{}', '', '', now())
        RETURNING id
        """,
        [f"txn_raw_{key}", merchant_id, key],
    )
    return cursor.fetchone()[0]


def test_an_unbalanced_journal_inserted_with_raw_sql_is_refused_at_commit(merchant_id):
    # given two open accounts
    accounts = ledger_accounts_open(
        merchant_id=merchant_id,
        livemode=False,
        currency="eur",
        codes=[RECEIVABLE, chart.MERCHANT_PENDING],
    )
    debit, credit = accounts[RECEIVABLE].pk, accounts[chart.MERCHANT_PENDING].pk
    before = row_counts()
    statements_ran = False

    # when a journal whose entries sum to +1 is written by hand, entry by entry
    with (
        pytest.raises(IntegrityError, match="does not balance"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        txn_id = _raw_journal(cursor, merchant_id, "unbalanced")
        insert = (
            "INSERT INTO ledger_entry (transaction_id, account_id, amount, currency, phase,"
            " balance_after, account_version) VALUES (%s, %s, %s, 'eur', 'posted', %s, 1)"
        )
        cursor.execute(insert, [txn_id, debit, 1000, 1000])
        cursor.execute(insert, [txn_id, credit, -999, 999])
        statements_ran = True  # each INSERT passed: only the commit checks the sum

    # then the commit failed and nothing was kept
    assert statements_ran
    assert row_counts() == before


def test_a_journal_balanced_across_statements_is_accepted_at_commit(merchant_id):
    # the constraint is deferred: entries may arrive in any order within the transaction
    accounts = ledger_accounts_open(
        merchant_id=merchant_id,
        livemode=False,
        currency="eur",
        codes=[RECEIVABLE, chart.MERCHANT_PENDING],
    )
    with transaction.atomic(), connection.cursor() as cursor:
        txn_id = _raw_journal(cursor, merchant_id, "balanced")
        for code, amount in ((RECEIVABLE, 500), (chart.MERCHANT_PENDING, -500)):
            cursor.execute(
                "INSERT INTO ledger_entry (transaction_id, account_id, amount, currency, phase,"
                " balance_after, account_version) VALUES (%s, %s, %s, 'eur', 'posted', 500, 1)",
                [txn_id, accounts[code].pk, amount],
            )
            cursor.execute(
                "UPDATE ledger_account SET posted_balance = 500, version = 1 WHERE id = %s",
                [accounts[code].pk],
            )
    assert LedgerEntry.objects.filter(transaction_id=txn_id).count() == 2


def test_journal_rows_cannot_be_updated_or_deleted_through_the_orm(merchant_id):
    # given a posted journal
    txn = _capture(merchant_id, "orm")
    before = row_counts()
    entries = LedgerEntry.objects.filter(transaction=txn)

    # then every ORM write path fails
    attempts = [
        lambda: JournalTransaction.objects.filter(pk=txn.pk).update(description="edited"),
        lambda: JournalTransaction.objects.filter(pk=txn.pk).update(merchant_id=1),
        lambda: entries.update(amount=5),
        lambda: entries.delete(),
        lambda: entries.first().delete(),
        lambda: LedgerAccount.objects.filter(merchant_id=merchant_id).delete(),
        lambda: JournalTransaction.objects.filter(pk=txn.pk).delete(),
        lambda: txn.save(),  # an UPDATE of an existing row
    ]
    for attempt in attempts:
        # the database refuses (IntegrityError); for parents of protected rows Django already
        # refuses before sending the DELETE (ProtectedError)
        with pytest.raises((IntegrityError, ProtectedError)), transaction.atomic():
            attempt()

    assert row_counts() == before
    assert LedgerEntry.objects.filter(transaction=txn).count() == 2


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE ledger_transaction SET description = 'edited'",
        "UPDATE ledger_transaction SET merchant_id = merchant_id + 1",
        "DELETE FROM ledger_transaction",
        "UPDATE ledger_entry SET amount = amount * 2",
        "UPDATE ledger_entry SET balance_after = 0",
        "DELETE FROM ledger_entry",
        "DELETE FROM ledger_account",
        "TRUNCATE ledger_entry",
        "TRUNCATE ledger_transaction CASCADE",
        "TRUNCATE ledger_account CASCADE",
    ],
)
def test_journal_rows_cannot_be_changed_with_raw_sql(merchant_id, sql):
    _capture(merchant_id, "raw")
    before = row_counts()
    with (
        pytest.raises(IntegrityError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    assert row_counts() == before


def test_an_account_balance_cannot_move_without_its_entry(merchant_id):
    _capture(merchant_id, "guard")
    account = LedgerAccount.objects.get(merchant_id=merchant_id, code=chart.MERCHANT_PENDING)
    for sql in (
        "UPDATE ledger_account SET posted_balance = posted_balance + 1 WHERE id = %s",
        "UPDATE ledger_account SET posted_balance = posted_balance + 1, version = version + 1 "
        "WHERE id = %s",
        "UPDATE ledger_account SET currency = 'usd' WHERE id = %s",
    ):
        with (
            pytest.raises(IntegrityError, match="ledger: account"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [account.pk])
    account.refresh_from_db()
    assert (account.posted_balance, account.version) == (1000, 1)


def test_an_entry_must_be_in_its_account_currency(merchant_id):
    accounts = ledger_accounts_open(
        merchant_id=merchant_id, livemode=False, currency="eur", codes=[RECEIVABLE]
    )
    with (
        pytest.raises(IntegrityError, match="does not match account"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        txn_id = _raw_journal(cursor, merchant_id, "fx")
        cursor.execute(
            "INSERT INTO ledger_entry (transaction_id, account_id, amount, currency, phase,"
            " balance_after, account_version) VALUES (%s, %s, 100, 'usd', 'posted', 100, 1)",
            [txn_id, accounts[RECEIVABLE].pk],
        )


def test_the_database_refuses_a_capture_above_its_hold_even_without_the_python_checks(
    merchant_id,
):
    # given a hold of 5000 (and the capture's accounts opened)
    authorization = hold(merchant_id, 5000, key="db-hold")
    ledger_accounts_open(
        merchant_id=merchant_id,
        livemode=False,
        currency="eur",
        codes=[RECEIVABLE, chart.MERCHANT_PENDING],
    )
    before = row_counts()
    # when the engine is driven directly (no Python checks) to post 6000 against it
    spec = _Journal(
        kind="capture",
        merchant_id=merchant_id,
        livemode=False,
        currency="eur",
        idempotency_key="db-capture",
        request_hash="x",
        metadata={},
        resolves_id=authorization.pk,
        entries=[
            (chart.AUTHORIZED_HOLDS, -5000, "release"),
            (chart.AUTHORIZATIONS, 5000, "release"),
            (RECEIVABLE, 6000, "posted"),
            (chart.MERCHANT_PENDING, -6000, "posted"),
        ],
    )
    # then the commit is refused
    with pytest.raises(IntegrityError, match="post at most 5000"):
        _execute(spec)
    assert row_counts() == before


def test_the_database_refuses_a_reversal_that_is_not_the_exact_negation(merchant_id):
    original = _capture(merchant_id, "db-original", amount=1000)
    spec = _Journal(
        kind="reversal",
        merchant_id=merchant_id,
        livemode=False,
        currency="eur",
        idempotency_key="db-reversal",
        request_hash="x",
        metadata={},
        reverses_id=original.pk,
        entries=[(RECEIVABLE, -900, "posted"), (chart.MERCHANT_PENDING, 900, "posted")],
    )
    with pytest.raises(IntegrityError, match="not the exact negation"):
        _execute(spec)
    assert not JournalTransaction.objects.filter(reverses=original).exists()
