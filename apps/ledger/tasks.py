"""Thin Celery tasks: each calls one ledger service."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from apps.ledger import services

# Used when the caller passes nothing (the beat schedule cannot carry arguments). Per-connector
# delays belong to the connector configuration; routing's settlement job should pass them.
DEFAULT_SETTLEMENT_DELAY_SECONDS = 2 * 24 * 3600


@shared_task(name="ledger.check_drift")
def check_drift() -> dict:
    run = services.ledger_check_drift()
    return {"run": run.pk, "status": run.status, "findings": run.findings_count}


@shared_task(name="ledger.release_settled")
def release_settled(
    delays_by_connector: dict[str, int] | None = None,
    default_delay_seconds: int | None = None,
) -> int:
    return services.ledger_release_settled(
        delays_by_connector=delays_by_connector
        if delays_by_connector is not None
        else getattr(settings, "LEDGER_SETTLEMENT_DELAYS", {}),
        default_delay_seconds=default_delay_seconds
        if default_delay_seconds is not None
        else getattr(
            settings, "LEDGER_DEFAULT_SETTLEMENT_DELAY_SECONDS", DEFAULT_SETTLEMENT_DELAY_SECONDS
        ),
    )
