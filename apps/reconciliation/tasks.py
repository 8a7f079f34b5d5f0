"""Thin Celery tasks (issue 14): the nightly run (django-celery-beat crontab, default 02:00 in
RECONCILIATION_TIME_ZONE, editable in the admin) and one connector's run."""

from __future__ import annotations

from celery import shared_task

from apps.reconciliation import services


@shared_task(name="reconciliation.run_nightly")
def run_nightly() -> list[dict]:
    return [
        {"run": run.public_id, "status": run.status}
        for run in services.reconciliation_run_all(trigger="beat")
    ]


@shared_task(name="reconciliation.run_connector")
def run_connector(connector_id: int, run_date: str | None = None, trigger: str = "admin") -> dict:
    from datetime import date

    from apps.connectors import selectors as connector_selectors

    (connector,) = connector_selectors.connectors_by_ids(ids=[connector_id])
    run = services.reconciliation_run(
        connector=connector,
        run_date=date.fromisoformat(run_date) if run_date else None,
        trigger=trigger,
    )
    return {"run": run.public_id, "status": run.status}
