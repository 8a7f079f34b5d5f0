"""Reads of the money audit's own runs."""

from __future__ import annotations

from apps.money_audit.models import MoneyAuditCheck, MoneyAuditRun


def run_checks(*, run: MoneyAuditRun) -> list[MoneyAuditCheck]:
    return list(run.checks.order_by("position"))


def latest_run() -> MoneyAuditRun | None:
    return MoneyAuditRun.objects.order_by("-id").first()
