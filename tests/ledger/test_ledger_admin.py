"""The finance back-office: read-only ledger pages, trial balance, drill-down search."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.ledger import postings
from apps.ledger.models import DriftCheckRun, JournalTransaction, LedgerAccount
from apps.ledger.services import ledger_check_drift, ledger_post
from tests.factories import JournalTransactionFactory, StaffUserFactory
from tests.ledger.support import CONNECTOR, row_counts

pytestmark = pytest.mark.django_db


@pytest.fixture
def journal(merchant_id) -> JournalTransaction:
    return JournalTransactionFactory(
        merchant_id=merchant_id, amount=4200, psp_fee=42, connector=CONNECTOR, source_id="pi_42"
    )


@pytest.fixture
def admin_client_(client):
    client.force_login(StaffUserFactory(superuser=True))
    return client


def test_ledger_pages_render_read_only(admin_client_, journal):
    account = LedgerAccount.objects.filter(merchant_id=journal.merchant_id).first()
    ledger_check_drift()
    pages = [
        reverse("admin:ledger_ledgeraccount_changelist"),
        reverse("admin:ledger_ledgeraccount_change", args=[account.pk]),
        reverse("admin:ledger_journaltransaction_changelist"),
        reverse("admin:ledger_journaltransaction_change", args=[journal.pk]),
        reverse("admin:ledger_driftcheckrun_changelist"),
        reverse("admin:ledger_driftcheckrun_change", args=[DriftCheckRun.objects.get().pk]),
        reverse("admin:ledger_trial_balance"),
    ]
    for url in pages:
        response = admin_client_.get(url)
        assert response.status_code == 200, url
        assert b'name="_save"' not in response.content, url  # no save button anywhere

    # nothing can be added, changed or deleted, even by a superuser
    before = row_counts()
    assert admin_client_.get(reverse("admin:ledger_ledgeraccount_add")).status_code == 403
    delete_url = reverse("admin:ledger_journaltransaction_delete", args=[journal.pk])
    assert admin_client_.post(delete_url, {"post": "yes"}).status_code == 403
    change_url = reverse("admin:ledger_journaltransaction_change", args=[journal.pk])
    admin_client_.post(change_url, {"description": "edited"})
    assert row_counts() == before
    journal.refresh_from_db()
    assert journal.description == ""


def test_trial_balance_shows_totals_per_currency(admin_client_, journal):
    response = admin_client_.get(reverse("admin:ledger_trial_balance"))
    body = response.content.decode()
    assert "EUR" in body
    assert "balanced" in body
    assert "NOT balanced" not in body
    assert "4200" in body


def test_journals_are_found_by_source_id(admin_client_, journal, merchant_id):
    ledger_post(
        merchant_id=merchant_id,
        livemode=False,
        currency="eur",
        kind="refund",
        idempotency_key="re_9",
        legs=postings.refund_legs(connector=CONNECTOR, amount=10),
        source_type="refund",
        source_id="re_9",
    )
    url = reverse("admin:ledger_journaltransaction_changelist")
    body = admin_client_.get(url, {"q": "pi_42"}).content.decode()
    assert journal.public_id in body
    assert "re_9" not in body


def test_staff_see_only_the_merchants_they_serve(client, journal, staff_roles):
    client.force_login(StaffUserFactory(role="finance"))  # serving no merchant
    response = client.get(reverse("admin:ledger_journaltransaction_changelist"))
    assert response.status_code == 200
    assert journal.public_id not in response.content.decode()
    assert client.get(reverse("admin:ledger_trial_balance")).status_code == 200
