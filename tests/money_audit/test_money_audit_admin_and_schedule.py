"""Runs are kept and shown read-only in the admin, to staff who see every merchant; the audit
runs nightly from beat."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from apps.money_audit.models import MoneyAuditRun
from apps.money_audit.services import AuditParameters, money_audit_run
from apps.money_audit.tasks import run_money_audit
from tests.factories import StaffUserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def run():
    return money_audit_run(parameters=AuditParameters(simulator_url=""))


def test_the_nightly_schedule_is_bootstrapped_and_the_task_stores_a_beat_run(settings):
    settings.MONEY_AUDIT_SIMULATOR_URL = ""
    call_command("bootstrap_schedules", verbosity=0)
    task = PeriodicTask.objects.get(name="money audit (nightly)")
    assert task.task == "money_audit.run"
    assert (task.crontab.minute, task.crontab.hour) == ("30", "3")

    result = run_money_audit()

    stored = MoneyAuditRun.objects.get(pk=result["run"])
    assert stored.trigger == "beat"
    assert stored.status == "passed" and result == {
        "run": stored.pk,
        "status": "passed",
        "broken": 0,
    }
    assert stored.checks.count() == 18


def test_a_superuser_sees_runs_read_only(client, run):
    client.force_login(StaffUserFactory(superuser=True))
    changelist = client.get(reverse("admin:money_audit_moneyauditrun_changelist"))
    assert changelist.status_code == 200
    assert f"/{run.pk}/change/" in changelist.content.decode()
    page = client.get(reverse("admin:money_audit_moneyauditrun_change", args=[run.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "ledger_journals_balanced" in body and "no_card_numbers" in body
    assert 'name="_save"' not in body
    assert client.get(reverse("admin:money_audit_moneyauditrun_add")).status_code == 403
    delete = reverse("admin:money_audit_moneyauditrun_delete", args=[run.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert MoneyAuditRun.objects.filter(pk=run.pk).exists()


def test_merchant_scoped_staff_do_not_see_runs(client, run, staff_roles, merchant):
    client.force_login(StaffUserFactory(role="finance", serves=[merchant]))
    changelist = client.get(reverse("admin:money_audit_moneyauditrun_changelist"))
    assert changelist.status_code == 200
    assert f"/{run.pk}/change/" not in changelist.content.decode()
    page = client.get(reverse("admin:money_audit_moneyauditrun_change", args=[run.pk]))
    assert page.status_code in (302, 404)


def test_nobody_is_granted_edits_of_runs(staff_roles):
    granted = {
        p.codename
        for group in Group.objects.all()
        for p in group.permissions.filter(content_type__app_label="money_audit")
    }
    assert granted == {"view_moneyauditrun", "view_moneyauditcheck"}
