"""Finance resolutions (issue 14, item 6): each action behind its own permission, through a
service that posts the adjusting journal and writes the audit log; and the admin screens."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.core.audit import Actor
from apps.core.errors import ConflictError, PermissionDeniedError
from apps.core.models import AuditLogEntry
from apps.ledger import chart
from apps.ledger import selectors as ledger_selectors
from apps.ledger.models import JournalTransaction
from apps.reconciliation import services
from apps.reconciliation.models import Discrepancy, ReconciliationRun, SettlementLine
from tests.factories.staff import PASSWORD, StaffUserFactory
from tests.reconciliation.conftest import day

pytestmark = pytest.mark.django_db


def _balance(connector, code):
    return ledger_selectors.account_balance(
        merchant_id=connector.merchant_id, livemode=False, currency="eur", code=code
    )


@pytest.fixture
def finance(merchant):
    return StaffUserFactory(role="finance", serves=[merchant])


@pytest.fixture
def support(merchant):
    return StaffUserFactory(role="support", serves=[merchant])


@pytest.fixture
def discrepancy_of(stripe_recon, control, pay):
    def make(kind: str, run_day: int = 1, amount: int = 4000):
        control.set_settlement(stripe_recon.simulator_account, discrepancies={kind: 1.0}, seed=3)
        intent = pay(amount)
        control.settle(stripe_recon.simulator_account, up_to=day(1).isoformat())
        run = services.reconciliation_run(connector=stripe_recon, run_date=day(run_day))
        assert run.status == "succeeded", run.error
        return Discrepancy.objects.get(run=run), intent

    return make


def test_accepting_the_psp_figure_posts_the_line_and_clears_the_batch(
    stripe_recon, discrepancy_of, finance
):
    d, _ = discrepancy_of("amount_differs")
    clearing = chart.settlement_clearing(stripe_recon.public_id)
    # the payout paid the short line too: clearing holds its net until someone decides
    assert _balance(stripe_recon, clearing) != 0

    d = services.discrepancy_accept_psp(
        discrepancy=d, actor=Actor.staff(finance), user=finance, note="PSP confirmed"
    )

    assert (d.status, d.resolution) == ("resolved", "accepted_psp")
    assert _balance(stripe_recon, clearing) == 0
    assert _balance(stripe_recon, chart.psp_receivable(stripe_recon.public_id)) == 0
    # the amount difference is written off; the fee the PSP charged replaces our estimate
    assert _balance(stripe_recon, chart.RECONCILIATION_WRITE_OFFS) == 100
    journal = JournalTransaction.objects.get(public_id=d.journal)
    assert (journal.kind, journal.source_id) == ("adjustment", d.public_id)
    assert SettlementLine.objects.get(pk=d.line_id).state == "resolved"
    entry = AuditLogEntry.objects.get(object_id=d.public_id)
    assert entry.action == "reconciliation.discrepancy.accepted_psp"
    assert entry.actor == finance.username
    with pytest.raises(ConflictError):
        services.discrepancy_accept_psp(discrepancy=d, actor=Actor.staff(finance), user=finance)


def test_writing_off_a_missing_capture_clears_its_receivable(stripe_recon, control, pay, finance):
    control.set_settlement(
        stripe_recon.simulator_account, discrepancies={"missing_capture": 1.0}, seed=3
    )
    pay(3000)
    control.settle(stripe_recon.simulator_account, up_to=day(1).isoformat())
    services.reconciliation_run(connector=stripe_recon, run_date=day(7))
    (d,) = Discrepancy.objects.filter(kind="missing_in_report")
    receivable = chart.psp_receivable(stripe_recon.public_id)
    assert _balance(stripe_recon, receivable) > 0

    services.discrepancy_write_off(discrepancy=d, actor=Actor.staff(finance), user=finance)

    d.refresh_from_db()
    assert d.resolution == "written_off"
    assert _balance(stripe_recon, chart.RECONCILIATION_WRITE_OFFS) == 3000
    # the receivable is cleared and the fee estimated at capture is taken back (none charged)
    assert _balance(stripe_recon, receivable) == 0
    assert _balance(stripe_recon, chart.PSP_FEES) == 0


def test_linking_an_unknown_line_by_hand_then_reopening_reverses_it(
    stripe_recon, discrepancy_of, finance
):
    d, intent = discrepancy_of("unknown_transaction")
    assert d.kind == "unexpected_in_report"

    services.discrepancy_link(
        discrepancy=d, public_id=intent.public_id, actor=Actor.staff(finance), user=finance
    )
    d.refresh_from_db()
    assert (d.resolution, d.match_key, d.expected_public_id) == (
        "linked",
        "manual",
        intent.public_id,
    )
    journal = d.journal

    services.discrepancy_reopen(discrepancy=d, actor=Actor.staff(finance), user=finance)
    d.refresh_from_db()
    assert (d.status, d.journal, d.reopen_count) == ("open", "", 1)
    assert (d.expected_public_id, d.match_key) == ("", "")
    assert SettlementLine.objects.get(pk=d.line_id).state == "unexpected_in_report"
    assert JournalTransaction.objects.filter(reverses__public_id=journal).exists()
    actions = list(
        AuditLogEntry.objects.filter(object_id=d.public_id)
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == [
        "reconciliation.discrepancy.linked",
        "reconciliation.discrepancy.reopened",
    ]


def test_expected_later_leaves_the_queue_without_a_journal(discrepancy_of, finance):
    d, _ = discrepancy_of("payout_mismatch")
    services.discrepancy_expect_later(discrepancy=d, actor=Actor.staff(finance), user=finance)
    d.refresh_from_db()
    assert (d.status, d.journal) == ("expected_later", "")
    assert d not in Discrepancy.objects.filter(status="open")


@pytest.mark.parametrize(
    "service",
    [
        services.discrepancy_accept_psp,
        services.discrepancy_write_off,
        services.discrepancy_expect_later,
    ],
)
def test_each_action_needs_its_permission(discrepancy_of, support, service):
    d, _ = discrepancy_of("fee_differs")
    with pytest.raises(PermissionDeniedError):
        service(discrepancy=d, actor=Actor.staff(support), user=support)
    d.refresh_from_db()
    assert d.status == "open"
    assert not AuditLogEntry.objects.filter(object_id=d.public_id).exists()


def test_finance_admin_queue_side_by_side_export_and_actions(
    client, stripe_recon, discrepancy_of, finance
):
    d, intent = discrepancy_of("fee_differs")
    client.login(username=finance.username, password=PASSWORD)

    queue = client.get(
        reverse("admin:reconciliation_discrepancy_changelist") + "?kind=fee_mismatch"
    )
    assert queue.status_code == 200 and d.public_id in queue.content.decode()
    page = client.get(reverse("admin:reconciliation_discrepancy_change", args=[d.pk]))
    assert page.status_code == 200
    assert intent.public_id in page.content.decode() and "tolerance 0" in page.content.decode()

    run = ReconciliationRun.objects.get(pk=d.run_id)
    runs = client.get(reverse("admin:reconciliation_reconciliationrun_changelist"))
    assert "fee_mismatch: 1" in runs.content.decode()
    export = client.get(reverse("admin:reconciliation_run_export", args=[run.pk]))
    body = b"".join(export.streaming_content).decode()
    assert body.splitlines()[0].startswith("id,kind,status")
    assert d.public_id in body

    response = client.post(
        reverse("admin:reconciliation_discrepancy_changelist"),
        {"action": "accept_psp", "_selected_action": [d.pk]},
    )
    assert response.status_code == 302
    d.refresh_from_db()
    assert d.resolution == "accepted_psp"
    # the fee difference went to the fees expense account, not to write-offs
    assert JournalTransaction.objects.get(public_id=d.journal).kind == "adjustment"


def test_reconcile_now_from_the_admin(client, stripe_recon, control, pay, finance):
    from apps.reconciliation.models import ReconciliationProfile

    pay(2500)
    control.settle(stripe_recon.simulator_account, up_to=day(1).isoformat())
    client.login(username=finance.username, password=PASSWORD)
    profile = ReconciliationProfile.objects.get(connector=stripe_recon)
    response = client.post(
        reverse("admin:reconciliation_reconciliationprofile_changelist"),
        {"action": "reconcile_now", "_selected_action": [profile.pk]},
        follow=True,
    )
    assert response.status_code == 200
    run = ReconciliationRun.objects.get(connector=stripe_recon)
    assert run.trigger == "admin" and run.status == "succeeded"
    # estimated (booked at capture) against actual (the report) fees, per connector
    profiles = client.get(reverse("admin:reconciliation_reconciliationprofile_changelist"))
    assert "estimated → actual" in profiles.content.decode()
