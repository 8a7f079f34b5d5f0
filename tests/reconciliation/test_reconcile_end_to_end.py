"""End to end (issue 14): payments and refunds through the platform on the simulator, the
simulator's batch the next (simulated) day, a run that fetches, matches and posts it."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command

from apps.events.models import OutboxEvent
from apps.ledger import chart
from apps.ledger import selectors as ledger_selectors
from apps.reconciliation import services
from apps.reconciliation.models import Discrepancy, SettlementLine, SettlementReport
from tests.reconciliation.conftest import day

pytestmark = pytest.mark.django_db


def _balance(connector, code: str, currency: str = "eur") -> int:
    return ledger_selectors.account_balance(
        merchant_id=connector.merchant_id, livemode=False, currency=currency, code=code
    )


def _runs_counted(psp: str) -> float:
    from prometheus_client import REGISTRY

    sample = REGISTRY.get_sample_value(
        "pp_reconciliation_runs_total", {"psp": psp, "result": "succeeded"}
    )
    return sample or 0.0


@pytest.mark.parametrize("dialect", ["stripe", "adyen"])
def test_a_clean_batch_is_matched_posted_and_released(dialect, request, control, pay, refund):
    connector = request.getfixturevalue(f"{dialect}_recon")
    first, second = pay(10000), pay(2000)
    partial = refund(first, 2500)

    control.settle(connector.simulator_account, up_to=day(1).isoformat())
    runs_before = _runs_counted(dialect)
    run = services.reconciliation_run(connector=connector, run_date=day(1))

    assert run.status == "succeeded", run.error
    assert _runs_counted(dialect) == runs_before + 1  # pp_reconciliation_runs on /metrics
    # Stripe: one report run per day since the profile began (today's is empty)
    assert run.reports_loaded == (2 if dialect == "stripe" else 1)
    lines = {
        line.expected_public_id: line
        for line in SettlementLine.objects.filter(run=run).exclude(record_type="payout")
    }
    assert lines[first.public_id].state == "matched"
    assert lines[first.public_id].match_key == "psp_reference"
    assert lines[second.public_id].state == "matched"
    assert lines[partial.public_id].state == "matched"
    assert lines[partial.public_id].match_key == "modification_reference"
    assert not Discrepancy.objects.filter(run=run).exists()
    assert run.counts["lines"]["matched"]["count"] == 3
    # the PSP's fee from the report, not our estimate; the receivable is cleared exactly and the
    # payout reached the bank, so clearing is back to zero
    fees = sum(line.fee for line in lines.values())
    net = sum(line.net for line in lines.values())
    assert run.amounts["eur"]["fees_actual"] == fees
    assert _balance(connector, chart.psp_receivable(connector.public_id)) == 0
    assert _balance(connector, chart.PSP_FEES) == fees
    assert _balance(connector, chart.settlement_clearing(connector.public_id)) == 0
    assert _balance(connector, chart.BANK) == net
    # released on settlement: what the merchant is owed is available now
    assert _balance(connector, chart.MERCHANT_PENDING) == 0
    assert _balance(connector, chart.MERCHANT_AVAILABLE) > 0
    assert OutboxEvent.objects.filter(
        event_type="reconciliation.run.completed", object_id=run.public_id
    ).exists()

    # safe to re-run: nothing new, nothing posted twice
    again = services.reconciliation_run(connector=connector, run_date=day(1))
    assert again.status == "succeeded" and again.reports_loaded == 0
    assert _balance(connector, chart.BANK) == net
    assert SettlementLine.objects.filter(report__connector=connector).count() == len(lines) + 1


def test_the_same_file_twice_is_recognized(stripe_recon, control, pay, tmp_path):
    pay(5000)
    control.settle(stripe_recon.simulator_account, up_to=day(1).isoformat())
    services.reconciliation_run(connector=stripe_recon, run_date=day(1))
    report = SettlementReport.objects.get(connector=stripe_recon, line_count__gt=0)
    reports = SettlementReport.objects.filter(connector=stripe_recon).count()
    copy = tmp_path / "again.csv"
    copy.write_bytes(Path(report.path).read_bytes())

    call_command(
        "reconcile", connector=stripe_recon.public_id, file=str(copy), date=day(1).isoformat()
    )
    assert SettlementReport.objects.filter(connector=stripe_recon).count() == reports
    assert SettlementLine.objects.filter(report=report).count() == 2  # charge + payout
    assert SettlementLine.objects.filter(report__connector=stripe_recon).count() == 2


def test_reconcile_command_prints_progress_and_summary(adyen_recon, control, pay, capsys):
    pay(3000)
    control.settle(adyen_recon.simulator_account, up_to=day(1).isoformat())
    call_command("reconcile", connector=adyen_recon.public_id, date=day(1).isoformat())
    out = capsys.readouterr().out
    assert "fetched 1 new report(s)" in out
    assert "loaded settlement_detail_report_batch_1.csv" in out
    assert "summary: 1 loaded, 0 refused, 0 already loaded; 1 matched, 0 discrepancies" in out


def test_the_timer_release_is_only_the_fallback(stripe_recon, control, pay):
    from datetime import timedelta

    from django.utils import timezone

    from apps.ledger import services as ledger_services

    pay(2000)
    control.settle(stripe_recon.simulator_account, up_to=day(1).isoformat())
    services.reconciliation_run(connector=stripe_recon, run_date=day(1))
    available = _balance(stripe_recon, chart.MERCHANT_AVAILABLE)
    pay(3000)  # captured after; its connector now settles by report

    ledger_services.ledger_release_settled(
        delays_by_connector={},
        default_delay_seconds=0,
        now=timezone.now() + timedelta(days=30),
    )

    # (other merchants' captures may be released: the timer runs for every connector)
    assert _balance(stripe_recon, chart.MERCHANT_AVAILABLE) == available
    assert _balance(stripe_recon, chart.MERCHANT_PENDING) > 0


def test_the_nightly_run_is_a_beat_crontab_staff_can_edit(stripe_recon, control, pay):
    from django_celery_beat.models import PeriodicTask

    from apps.reconciliation.tasks import run_nightly

    call_command("bootstrap_schedules", verbosity=0)
    task = PeriodicTask.objects.get(task="reconciliation.run_nightly")
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == (
        "0",
        "2",
        "UTC",
    )

    pay(2000)
    control.settle(stripe_recon.simulator_account, up_to=day(-1).isoformat())  # nothing due yet
    (result,) = run_nightly()
    assert result["status"] == "succeeded"
