"""The drift check: every account recomputed from its entries, each account's balance_after and
version chain walked, every journal's zero sums and each currency's trial balance re-checked;
the run and its findings are stored (DriftCheckRun, DriftFinding)."""

from __future__ import annotations

import logging

from django.db import connection
from django.utils import timezone

from apps.ledger import chart
from apps.ledger.models import DriftCheckRun, DriftFinding

logger = logging.getLogger(__name__)

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
