"""The drift check recomputes every balance from the entries and reports what does not match."""

from __future__ import annotations

from django.db import connection

from apps.ledger import chart, postings
from apps.ledger.models import DriftCheckRun, DriftFinding, LedgerAccount
from apps.ledger.services import ledger_check_drift, ledger_post
from apps.ledger.tasks import check_drift
from tests.ledger.support import CONNECTOR, LEDGER_DB, fund_available, hold

pytestmark = LEDGER_DB


def _some_activity(merchant_id: int) -> None:
    fund_available(merchant_id, 10_000, key="fund")
    hold(merchant_id, 700, key="auth")
    ledger_post(
        merchant_id=merchant_id,
        livemode=False,
        currency="eur",
        kind="refund",
        idempotency_key="refund",
        legs=postings.refund_legs(connector=CONNECTOR, amount=300),
    )


def _as_superuser_bypassing_triggers(sql: str, params) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(sql, params)
        finally:
            cursor.execute("SET session_replication_role = DEFAULT")


def test_a_clean_ledger_has_no_drift(merchant_id):
    _some_activity(merchant_id)
    result = check_drift()  # the Celery task, run inline
    run = DriftCheckRun.objects.get(pk=result["run"])
    assert run.status == DriftCheckRun.Status.CLEAN
    assert run.findings_count == 0
    assert run.accounts_checked == LedgerAccount.objects.count()
    assert run.entries_checked > 0


def test_the_drift_check_finds_a_balance_changed_behind_the_triggers(
    merchant_id, ledger_drift_allowed
):
    # given a ledger whose merchant_available balance a superuser bumped with triggers off
    _some_activity(merchant_id)
    account = LedgerAccount.objects.get(merchant_id=merchant_id, code=chart.MERCHANT_AVAILABLE)
    _as_superuser_bypassing_triggers(
        "UPDATE ledger_account SET posted_balance = posted_balance + 7 WHERE id = %s",
        [account.pk],
    )

    # when the drift check runs
    run = ledger_check_drift()

    # then it reports that account and the currency that no longer nets to zero
    assert run.status == DriftCheckRun.Status.DRIFT
    findings = {(f.kind, f.account_id) for f in run.findings.all()}
    assert (DriftFinding.Kind.POSTED_BALANCE, account.pk) in findings
    balance_finding = run.findings.get(kind=DriftFinding.Kind.POSTED_BALANCE)
    assert (balance_finding.expected, balance_finding.actual) == (10_000, 10_007)
    assert run.findings.filter(kind=DriftFinding.Kind.CURRENCY_TOTAL, currency="eur").exists()


def test_the_drift_check_finds_a_broken_chain_and_an_unbalanced_journal(
    merchant_id, ledger_drift_allowed
):
    _some_activity(merchant_id)
    account = LedgerAccount.objects.get(merchant_id=merchant_id, code=chart.MERCHANT_PENDING)
    _as_superuser_bypassing_triggers(
        "UPDATE ledger_entry SET amount = amount - 1, balance_after = balance_after + 1 "
        "WHERE account_id = %s AND account_version = 1",
        [account.pk],
    )
    run = ledger_check_drift()
    kinds = set(run.findings.values_list("kind", flat=True))
    assert DriftFinding.Kind.CHAIN in kinds
    assert DriftFinding.Kind.UNBALANCED_TRANSACTION in kinds
    assert DriftFinding.Kind.POSTED_BALANCE in kinds
