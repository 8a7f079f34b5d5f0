"""Thin Celery task: the nightly money audit (settings.PLATFORM_BEAT_SCHEDULES)."""

from __future__ import annotations

from celery import shared_task

from apps.money_audit import services
from apps.money_audit.models import MoneyAuditRun


@shared_task(name="money_audit.run")
def run_money_audit() -> dict:
    run = services.money_audit_run(trigger=MoneyAuditRun.Trigger.BEAT)
    return {"run": run.pk, "status": run.status, "broken": run.checks_broken}
