"""Finance back-office: payouts with their journals and events; retry and cancel behind
core.retry_payout, through the services; staff see only the merchants they serve."""

from __future__ import annotations

import pytest

from apps.core.audit import Actor
from apps.core.models import AuditLogEntry
from apps.payouts import services
from apps.payouts.models import Payout
from tests.factories import PayoutFactory, StaffUserFactory
from tests.payouts.conftest import available, fund

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")
CHANGELIST = "/admin/payouts/payout/"


def _staff(role, merchant):
    return StaffUserFactory(username=f"{role}-user", role=role, serves=[merchant])


def _payout(merchant, amount=1_000) -> Payout:
    """A payout of the balance the test funded."""
    return PayoutFactory(merchant=merchant, amount=amount, funded=False)


def test_finance_cancels_a_pending_payout_through_the_service(client, staff_roles, merchant):
    fund(merchant, 5_000)
    payout = _payout(merchant)
    client.force_login(_staff("finance", merchant))

    response = client.post(
        CHANGELIST, {"action": "cancel_selected", "_selected_action": [payout.pk]}, follow=True
    )

    assert response.status_code == 200
    assert Payout.objects.get(pk=payout.pk).status == "canceled"
    assert available(merchant) == 5_000
    entry = AuditLogEntry.objects.get(action="payout.canceled")
    assert (entry.actor_type, entry.actor) == ("staff", "finance-user")


def test_finance_retries_a_failed_payout(client, staff_roles, merchant):
    fund(merchant, 5_000)
    payout = services.payout_fail(payout=_payout(merchant), failure_code="x", actor=ACTOR)
    client.force_login(_staff("finance", merchant))

    client.post(CHANGELIST, {"action": "retry_selected", "_selected_action": [payout.pk]})

    payout = Payout.objects.get(pk=payout.pk)
    assert (payout.status, payout.attempt) == ("pending", 2)
    assert available(merchant) == 4_000


def test_support_sees_payouts_but_cannot_move_money(client, staff_roles, merchant):
    fund(merchant, 5_000)
    payout = _payout(merchant)
    client.force_login(_staff("support", merchant))

    page = client.get(CHANGELIST)
    assert page.status_code == 200
    assert payout.public_id in page.content.decode()
    assert "cancel_selected" not in page.content.decode()

    client.post(CHANGELIST, {"action": "cancel_selected", "_selected_action": [payout.pk]})
    assert Payout.objects.get(pk=payout.pk).status == "pending"
    assert available(merchant) == 4_000
    # and no one edits a payout by hand
    change = client.post(f"{CHANGELIST}{payout.pk}/change/", {"amount": 1})
    assert change.status_code == 403
    assert Payout.objects.get(pk=payout.pk).amount == 1_000


def test_staff_see_only_the_merchants_they_serve(client, staff_roles, merchant, other_merchant):
    fund(merchant, 5_000)
    fund(other_merchant, 5_000)
    mine, theirs = _payout(merchant), _payout(other_merchant)
    client.force_login(_staff("finance", merchant))

    listed = list(client.get(CHANGELIST).context["cl"].result_list)
    assert listed == [mine]
    assert client.get(f"{CHANGELIST}{theirs.pk}/change/").status_code == 302  # not found
    client.post(CHANGELIST, {"action": "cancel_selected", "_selected_action": [theirs.pk]})
    assert Payout.objects.get(pk=theirs.pk).status == "pending"


def test_detail_page_drills_down_to_the_journals_and_events(client, staff_roles, merchant):
    fund(merchant, 5_000)
    payout = services.payout_fail(payout=_payout(merchant), failure_code="x", actor=ACTOR)
    client.force_login(_staff("finance", merchant))

    page = client.get(f"{CHANGELIST}{payout.pk}/change/").content.decode()

    assert payout.ledger_transaction in page
    assert "payout_failure" in page
    assert "payout.failed" in page
    assert f"/admin/ledger/journaltransaction/?q={payout.public_id}" in page
    search = client.get("/admin/ledger/journaltransaction/", {"q": payout.public_id})
    assert len(search.context["cl"].result_list) == 2  # and back: the journals by payout id
