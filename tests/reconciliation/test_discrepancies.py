"""Every discrepancy the simulator injects lands in the queue as its kind, with both sides, the
tolerance and the match key; nothing else is flagged (issue 14, items 1 and 3)."""

from __future__ import annotations

import pytest

from apps.events.models import OutboxEvent
from apps.reconciliation import services
from apps.reconciliation.models import Discrepancy, ReconciliationProfile, SettlementLine
from tests.reconciliation.conftest import day

pytestmark = pytest.mark.django_db

# simulator kind -> (discrepancy kind, or None for "no discrepancy")
EXPECTED = {
    "amount_differs": "amount_mismatch",
    "unknown_transaction": "unexpected_in_report",
    "duplicate_line": "duplicate",
    "fee_differs": "fee_mismatch",
    "unknown_refund": "unexpected_refund",
    "payout_mismatch": "payout_mismatch",
}


def _run(connector, control, kind: str, run_day: int = 1):
    control.set_settlement(connector.simulator_account, discrepancies={kind: 1.0}, seed=1)
    return services.reconciliation_run(connector=connector, run_date=day(run_day))


@pytest.mark.parametrize("dialect", ["stripe", "adyen"])
@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_each_injected_kind_is_found_and_nothing_else(dialect, kind, request, control, pay):
    connector = request.getfixturevalue(f"{dialect}_recon")
    control.set_settlement(connector.simulator_account, discrepancies={kind: 1.0}, seed=1)
    intent = pay(4000)
    control.settle(connector.simulator_account, up_to=day(1).isoformat())

    run = services.reconciliation_run(connector=connector, run_date=day(1))

    assert run.status == "succeeded", run.error
    (found,) = Discrepancy.objects.filter(run=run)
    assert found.kind == EXPECTED[kind]
    assert found.status == "open" and found.tolerance == 0
    assert run.counts["discrepancies"] == {
        EXPECTED[kind]: {"count": 1, "amount": abs(found.difference)}
    }
    if kind in ("amount_differs", "fee_differs", "duplicate_line"):
        assert found.expected_public_id == intent.public_id
        assert found.match_key == "psp_reference"
    if kind == "amount_differs":
        assert (found.our_amount, abs(found.difference)) == (4000, 100)
    if kind == "fee_differs":
        assert found.psp_fee - found.our_fee == 50 == found.difference
    if kind == "payout_mismatch":
        assert found.difference == -100 and found.payout_id
    assert OutboxEvent.objects.filter(
        event_type="reconciliation.discrepancy.created", object_id=found.public_id
    ).exists()


def test_a_missing_capture_is_expected_until_the_window_passes(stripe_recon, control, pay):
    control.set_settlement(
        stripe_recon.simulator_account, discrepancies={"missing_capture": 1.0}, seed=1
    )
    intent = pay(3000)
    control.settle(stripe_recon.simulator_account, up_to=day(1).isoformat())

    early = services.reconciliation_run(connector=stripe_recon, run_date=day(1))
    assert early.counts["expected"] == {"count": 1, "amount": 3000}
    assert not Discrepancy.objects.exists()

    late = services.reconciliation_run(connector=stripe_recon, run_date=day(7))
    (missing,) = Discrepancy.objects.filter(run=late)
    assert (missing.kind, missing.expected_public_id, missing.our_amount) == (
        "missing_in_report",
        intent.public_id,
        3000,
    )
    # flagged once, however often the run is repeated
    services.reconciliation_run(connector=stripe_recon, run_date=day(8))
    assert Discrepancy.objects.filter(kind="missing_in_report").count() == 1


def test_a_late_settlement_matches_a_batch_later_and_is_flagged_late(stripe_recon, control, pay):
    control.set_settlement(
        stripe_recon.simulator_account, discrepancies={"late_settlement": 1.0}, seed=1
    )
    pay(3000)
    control.settle(stripe_recon.simulator_account, up_to=day(2).isoformat())

    first = services.reconciliation_run(connector=stripe_recon, run_date=day(1))
    assert first.counts["expected"]["count"] == 1
    second = services.reconciliation_run(connector=stripe_recon, run_date=day(2))
    assert second.counts["lines"]["matched"]["count"] == 1
    assert second.counts["late"] == 1
    assert not Discrepancy.objects.exists()


def test_tolerance_in_minor_units_absorbs_small_differences(stripe_recon, control, pay):
    ReconciliationProfile.objects.filter(connector=stripe_recon).update(tolerance=100)
    control.set_settlement(
        stripe_recon.simulator_account, discrepancies={"amount_differs": 1.0}, seed=1
    )
    pay(4000)
    control.settle(stripe_recon.simulator_account, up_to=day(1).isoformat())
    run = services.reconciliation_run(connector=stripe_recon, run_date=day(1))
    assert not Discrepancy.objects.filter(run=run).exists()
    assert SettlementLine.objects.filter(run=run, state="matched").count() == 1


def test_a_line_in_another_currency_is_a_currency_mismatch(stripe_recon, pay):
    from apps.core.audit import Actor

    intent = pay(2000)
    content = (
        "automatic_payout_id,balance_transaction_id,currency,gross,fee,net,reporting_category,"
        "source_id,payment_intent_id\n"
        f",txn_x,usd,20.00,0.55,19.45,charge,ch_x,{intent.psp_reference}\n"
    ).encode()
    _, _, run = services.report_upload(
        connector=stripe_recon, name="manual.csv", chunks=[content], actor=Actor.system("t")
    )
    (found,) = Discrepancy.objects.filter(run=run)
    assert (found.kind, found.expected_public_id, found.currency) == (
        "currency_mismatch",
        intent.public_id,
        "usd",
    )


def test_the_reconcile_command_refuses_an_unknown_connector_or_date(stripe_recon):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No such connector"):
        call_command("reconcile", connector="mca_nope")
    with pytest.raises(CommandError, match="--date must be YYYY-MM-DD"):
        call_command("reconcile", connector=stripe_recon.public_id, date="04/12/2026")
