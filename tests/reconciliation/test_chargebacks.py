"""Chargebacks in the settlement batches (issue 14): the simulator settles the disputes'
withdrawals and reinstatements in each dialect's report (Adyen `Chargeback` /
`ChargebackReversed` rows, the dispute fee in Commission (NC); Stripe `dispute` /
`dispute_reversal` rows), and the reconciliation matches them against the disputes app's
withdrawals and reinstatements, clearing the receivable the chargeback journals left."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from apps.ledger import chart
from apps.ledger import selectors as ledger_selectors
from apps.reconciliation import selectors, services
from apps.reconciliation.models import Discrepancy, SettlementLine, SettlementReport
from tests.disputes.conftest import (  # noqa: F401  (fixtures)
    PspSide,
    assert_books_hold,
    enqueued,
    receiver,
)
from tests.reconciliation.conftest import day

pytestmark = pytest.mark.django_db

FEE = 1500  # the simulator's dispute fee, and the ledger's default (15.00)
# notifications the simulator sends: (opened, lost, won)
NOTIFICATIONS = {"stripe": (2, 1, 2), "adyen": (2, 1, 1)}


def _balance(connector, code: str, currency: str = "eur") -> int:
    return ledger_selectors.account_balance(
        merchant_id=connector.merchant_id, livemode=False, currency=currency, code=code
    )


@pytest.fixture
def side(client, control, receiver, enqueued):  # noqa: F811
    def make(connector):
        return PspSide(client, control, receiver, connector)

    return make


def _dispute(side, control, intent, outcome: str, dialect: str) -> dict:
    opened, lost, won = NOTIFICATIONS[dialect]
    dispute = side.open(intent)
    side.deliver(opened)
    control.dispute_action(dispute["id"], "win" if outcome == "won" else "lose")
    side.deliver(won if outcome == "won" else lost)
    return dispute


@pytest.mark.parametrize("dialect", ["stripe", "adyen"])
def test_won_and_lost_disputes_settle_and_reconcile_clean(
    dialect, request, control, pay, merchant, side
):
    connector = request.getfixturevalue(f"{dialect}_recon")
    psp = side(connector)
    lost_payment, won_payment = pay(10000), pay(5000)
    lost = _dispute(psp, control, lost_payment, "lost", dialect)
    won = _dispute(psp, control, won_payment, "won", dialect)

    control.settle(connector.simulator_account, up_to=day(1).isoformat())
    run = services.reconciliation_run(connector=connector, run_date=day(1))

    assert run.status == "succeeded", run.error
    lines = list(SettlementLine.objects.filter(run=run).exclude(record_type="payout"))
    assert {line.state for line in lines} == {"matched"}, [
        (line.record_type, line.state, line.gross, line.fee) for line in lines
    ]
    assert not Discrepancy.objects.filter(run=run).exists()
    disputes = {
        (line.expected_kind, line.modification_reference): line
        for line in lines
        if line.record_type == "chargeback"
    }
    assert set(disputes) == {
        ("chargeback", lost["id"]),
        ("chargeback", won["id"]),
        ("reversal", won["id"]),
    }
    withdrawn = disputes[("chargeback", lost["id"])]
    assert (withdrawn.gross, withdrawn.fee, withdrawn.net) == (-10000, FEE, -10000 - FEE)
    assert withdrawn.expected_amount == 10000 and withdrawn.estimated_fee == FEE
    assert withdrawn.match_key == "psp_reference"
    assert withdrawn.expected_public_id.startswith("dp_")
    reinstated = disputes[("reversal", won["id"])]
    assert (reinstated.gross, reinstated.fee, reinstated.net) == (5000, 0, 5000)
    # the chargeback journals' receivable is cleared exactly, clearing emptied by the payout
    assert _balance(connector, chart.psp_receivable(connector.public_id)) == 0
    assert _balance(connector, chart.settlement_clearing(connector.public_id)) == 0
    captures = [line for line in lines if line.record_type == "charge"]
    assert _balance(connector, chart.BANK) == sum(line.net for line in lines)
    assert _balance(connector, chart.BANK) == (
        sum(line.net for line in captures) - 10000 - FEE - FEE
    )
    assert_books_hold(merchant)
    _check_report_rows(run, dialect, lost_payment, lost["id"], won["id"])


def _check_report_rows(run, dialect, payment, lost_id: str, won_id: str) -> None:
    """The rows as the dialect writes them (the raw file the run stored)."""
    rows = []
    for report in SettlementReport.objects.filter(run=run):
        rows += list(csv.DictReader(io.StringIO(Path(report.path).read_text())))
    if dialect == "adyen":
        mine = {
            (r["Type"], r["Modification Reference"]): r for r in rows if "Chargeback" in r["Type"]
        }
        assert set(mine) == {
            ("Chargeback", lost_id),
            ("Chargeback", won_id),
            ("ChargebackReversed", won_id),
        }
        withdrawn = mine[("Chargeback", lost_id)]
        assert withdrawn["Psp Reference"] == payment.psp_reference
        assert withdrawn["Gross Debit (GC)"] == "100.00"
        assert withdrawn["Commission (NC)"] == "15.00"  # the dispute fee
        assert withdrawn["Net Debit (NC)"] == "115.00"
        reinstated = mine[("ChargebackReversed", won_id)]
        assert reinstated["Gross Credit (GC)"] == reinstated["Net Credit (NC)"] == "50.00"
        return
    mine = {
        (r["reporting_category"], r["source_id"]): r
        for r in rows
        if r["reporting_category"].startswith("dispute")
    }
    assert set(mine) == {
        ("dispute", lost_id),
        ("dispute", won_id),
        ("dispute_reversal", won_id),
    }
    withdrawn = mine[("dispute", lost_id)]
    assert lost_id.startswith("du_")
    assert withdrawn["payment_intent_id"] == payment.psp_reference
    assert withdrawn["charge_id"].startswith("ch_")
    assert (withdrawn["gross"], withdrawn["fee"], withdrawn["net"]) == (
        "-100.00",
        "15.00",
        "-115.00",
    )
    reinstated = mine[("dispute_reversal", won_id)]
    assert (reinstated["gross"], reinstated["fee"], reinstated["net"]) == ("50.00", "0.00", "50.00")


@pytest.mark.parametrize("dialect", ["stripe", "adyen"])
def test_a_chargeback_we_do_not_know_is_unexpected_in_report(dialect, request, control, pay, side):
    connector = request.getfixturevalue(f"{dialect}_recon")
    psp = side(connector)
    payment = pay(4000)
    # the PSP disputes the payment, but its notifications never reach us
    dispute = psp.open(payment)

    control.settle(connector.simulator_account, up_to=day(1).isoformat())
    run = services.reconciliation_run(connector=connector, run_date=day(1))

    assert run.status == "succeeded", run.error
    line = SettlementLine.objects.get(run=run, record_type="chargeback")
    assert line.state == "unexpected_in_report"
    assert SettlementLine.objects.get(run=run, record_type="charge").state == "matched"
    found = Discrepancy.objects.get(run=run)
    assert found.kind == "unexpected_in_report"
    assert found.line_id == line.pk
    assert found.reference == dispute["id"]
    assert (found.psp_amount, found.psp_fee, found.our_amount) == (4000, FEE, None)
    # the payout still matches its lines: only the chargeback waits for a person
    assert not Discrepancy.objects.filter(run=run, kind="payout_mismatch").exists()


def test_a_dispute_fee_returned_on_a_win_reconciles_clean(
    stripe_recon, control, pay, merchant, side
):
    """Stripe may give the dispute fee back with the amount: the reversal's fee is negative
    and matches the fee the disputes app booked as returned."""
    psp = side(stripe_recon)
    payment = pay(6000)
    dispute = psp.open(payment, fee_returned_on_win=True)
    psp.deliver(2)
    control.dispute_action(dispute["id"], "win")
    psp.deliver(2)

    control.settle(stripe_recon.simulator_account, up_to=day(1).isoformat())
    run = services.reconciliation_run(connector=stripe_recon, run_date=day(1))

    assert run.status == "succeeded", run.error
    assert not Discrepancy.objects.filter(run=run).exists()
    reversal = SettlementLine.objects.get(run=run, expected_kind="reversal")
    assert reversal.state == "matched"
    assert (reversal.gross, reversal.fee, reversal.net, reversal.estimated_fee) == (
        6000,
        -FEE,
        6000 + FEE,
        -FEE,
    )
    assert _balance(stripe_recon, chart.psp_receivable(stripe_recon.public_id)) == 0
    assert _balance(stripe_recon, chart.settlement_clearing(stripe_recon.public_id)) == 0
    assert_books_hold(merchant)


def test_a_dispute_fee_other_than_the_booked_one_is_a_fee_mismatch(adyen_recon, control, pay, side):
    # we book 10.00 per dispute; the PSP charges its 15.00
    adyen_recon.fee_schedule = [
        *(adyen_recon.fee_schedule or []),
        {"kind": "dispute", "fixed": 1000},
    ]
    adyen_recon.save(update_fields=["fee_schedule"])
    psp = side(adyen_recon)
    payment = pay(8000)
    dispute = psp.open(payment)
    psp.deliver(2)

    control.settle(adyen_recon.simulator_account, up_to=day(1).isoformat())
    run = services.reconciliation_run(connector=adyen_recon, run_date=day(1))

    assert run.status == "succeeded", run.error
    line = SettlementLine.objects.get(run=run, record_type="chargeback")
    assert (line.state, line.expected_kind, line.agreed_fee, line.fee) == (
        "mismatched",
        "chargeback",
        1000,
        FEE,
    )
    found = Discrepancy.objects.get(run=run)
    assert (found.kind, found.reference, found.difference) == ("fee_mismatch", dispute["id"], 500)
    assert (found.our_amount, found.psp_amount) == (8000, 8000)
    # the finance screen shows the dispute as our side, not a payment or refund
    ours = selectors.discrepancy_sides(found)["ours"]
    assert ours["public_id"].startswith("dp_") and ours["psp_dispute_id"] == dispute["id"]
