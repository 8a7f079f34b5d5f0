"""The money audit: checks that every money invariant holds, names what does not, and stores the
run (shown read-only in the admin). Reads the other apps only through their selectors (and the
ledger's own drift check); compares with the PSP's own record where one can be read."""

from __future__ import annotations

import glob
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.connectors import selectors as connector_selectors
from apps.disputes import selectors as disputes_selectors
from apps.events import selectors as events_selectors
from apps.intents import selectors as intents_selectors
from apps.ledger import selectors as ledger_selectors
from apps.ledger import services as ledger_services
from apps.money_audit import card_scan, checks
from apps.money_audit.models import MoneyAuditCheck, MoneyAuditRun
from apps.money_audit.psp_record import PspRecordUnavailable, load_simulator_record, served_by

logger = logging.getLogger(__name__)

MAX_STORED_OFFENDERS = 500


@dataclass(frozen=True)
class AuditParameters:
    """How long things may stay undecided before they count as broken, where the PSP's record
    is (`simulator_url`, "" = do not look) and which log files to scan for card numbers."""

    processing_grace_seconds: int = 3600
    unresolved_after_seconds: int = 3600
    overdue_after_seconds: int = 600
    simulator_url: str = ""
    log_files: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, **overrides) -> AuditParameters:
        values = {
            "processing_grace_seconds": settings.MONEY_AUDIT_PROCESSING_GRACE_SECONDS,
            "unresolved_after_seconds": settings.MONEY_AUDIT_UNRESOLVED_AFTER_SECONDS,
            "overdue_after_seconds": settings.MONEY_AUDIT_OVERDUE_AFTER_SECONDS,
            "simulator_url": settings.MONEY_AUDIT_SIMULATOR_URL,
            "log_files": tuple(settings.MONEY_AUDIT_LOG_FILES),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["log_files"] = tuple(values["log_files"])
        return cls(**values)


@dataclass
class _Gathered:
    results: list[checks.CheckResult] = field(default_factory=list)
    figures: dict = field(default_factory=dict)
    psp_record_url: str = ""
    drift_run_id: int | None = None


def money_audit_run(
    *, trigger: str = MoneyAuditRun.Trigger.COMMAND, parameters: AuditParameters | None = None
) -> MoneyAuditRun:
    """Runs every check and stores the run with one row per invariant. Never raises for a
    broken invariant: the run says which ones broke."""
    parameters = parameters or AuditParameters.from_settings()
    now = timezone.now()
    started = time.monotonic()
    run = MoneyAuditRun.objects.create(
        started_at=now, trigger=trigger, parameters=_parameters_json(parameters)
    )
    gathered = _gather(parameters, now)
    by_name = {result.name: result for result in gathered.results}
    rows = []
    for position, name in enumerate(checks.INVARIANTS):
        result = by_name[name]
        rows.append(
            MoneyAuditCheck(
                run=run,
                position=position,
                name=name,
                title=result.title,
                status=result.status,
                offender_count=len(result.offenders),
                offenders=[o.as_dict() for o in result.offenders[:MAX_STORED_OFFENDERS]],
                detail=result.detail[:500],
            )
        )
    with transaction.atomic():
        MoneyAuditCheck.objects.bulk_create(rows)
        run.checks_held = sum(r.status == checks.HELD for r in rows)
        run.checks_broken = sum(r.status == checks.BROKEN for r in rows)
        run.checks_skipped = sum(r.status == checks.SKIPPED for r in rows)
        run.status = (
            MoneyAuditRun.Status.FAILED if run.checks_broken else MoneyAuditRun.Status.PASSED
        )
        run.psp_record_url = gathered.psp_record_url
        run.drift_check_run_id = gathered.drift_run_id
        run.figures = {**gathered.figures, "seconds": round(time.monotonic() - started, 2)}
        run.finished_at = timezone.now()
        run.save()
    if run.checks_broken:
        broken = [r.name for r in rows if r.status == checks.BROKEN]
        logger.error("money audit %s: broken invariants: %s", run.pk, ", ".join(broken))
    else:
        logger.info("money audit %s: every invariant held", run.pk)
    return run


def _parameters_json(parameters: AuditParameters) -> dict:
    values = asdict(parameters)
    values["log_files"] = list(parameters.log_files)
    return values


def _gather(parameters: AuditParameters, now: datetime) -> _Gathered:
    gathered = _Gathered()
    results = gathered.results

    # the ledger's own recomputation: journals balanced per currency, balances = entries
    drift = ledger_services.ledger_check_drift()
    gathered.drift_run_id = drift.pk
    results.extend(checks.ledger_checks(ledger_selectors.drift_findings(run_id=drift.pk)))
    gathered.figures["ledger"] = {
        "accounts": drift.accounts_checked,
        "journals": drift.transactions_checked,
        "entries": drift.entries_checked,
    }

    # our own state: nothing undecided past its bound
    gathered.figures.update(intents_selectors.audit_counts())
    processing_cutoff = now - timedelta(seconds=parameters.processing_grace_seconds)
    unresolved_cutoff = now - timedelta(seconds=parameters.unresolved_after_seconds)
    overdue_cutoff = now - timedelta(seconds=parameters.overdue_after_seconds)
    results.append(
        checks.intents_processing_check(
            intents_selectors.audit_intents_processing(updated_before=processing_cutoff), now
        )
    )
    results.append(
        checks.attempts_resolved_check(
            intents_selectors.audit_attempts_unresolved(started_before=unresolved_cutoff), now
        )
    )
    results.append(
        checks.refunds_resolved_check(
            intents_selectors.audit_refunds_unresolved(created_before=unresolved_cutoff), now
        )
    )
    results.append(
        checks.refund_reservations_check(intents_selectors.audit_refund_reservations_mismatched())
    )
    results.append(
        checks.dispute_totals_check(disputes_selectors.audit_dispute_totals_mismatched())
    )

    # events: relayed, delivered or dead-lettered, PSP notifications processed
    gathered.figures["events"] = events_selectors.audit_counts()
    results.append(
        checks.outbox_check(
            events_selectors.audit_outbox_unrelayed(created_before=overdue_cutoff), now
        )
    )
    results.append(
        checks.deliveries_check(
            events_selectors.audit_deliveries_overdue(due_before=overdue_cutoff), now
        )
    )
    results.append(
        checks.psp_webhooks_check(
            events_selectors.audit_psp_webhooks_overdue(due_before=overdue_cutoff), now
        )
    )

    # the PSP's own record
    results.extend(_psp_side(parameters, gathered))

    # card numbers in clear
    db_hits, columns = card_scan.scan_database()
    paths = sorted({path for pattern in parameters.log_files for path in glob.glob(pattern)})
    file_hits, lines = card_scan.scan_files(paths)
    results.append(
        checks.card_number_check(
            db_hits + file_hits,
            columns=columns,
            lines=lines,
        )
    )
    gathered.figures["card_scan"] = {
        "columns": columns,
        "log_files": len(paths),
        "log_lines": lines,
    }
    return gathered


def _psp_side(parameters: AuditParameters, gathered: _Gathered) -> list[checks.CheckResult]:
    url = parameters.simulator_url.strip()
    if not url:
        why = "no PSP record configured (MONEY_AUDIT_SIMULATOR_URL is empty)"
        return [checks.CheckResult.skipped(name, why) for name in checks.PSP_CHECKS]
    try:
        record = load_simulator_record(url)
    except PspRecordUnavailable as exc:
        why = f"no PSP simulator: {exc}"[:500]
        gathered.figures["psp"] = {"skipped": why}
        return [checks.CheckResult.skipped(name, why) for name in checks.PSP_CHECKS]
    endpoints = connector_selectors.connector_endpoints()
    served = {pk for pk, endpoint in endpoints.items() if served_by(endpoint, record.url)}
    names = {endpoints[pk].rstrip("/").rsplit("/", 1)[-1] for pk in served}
    intents = (
        intent
        for intent in intents_selectors.audit_payment_records()
        if any(a["connector_id"] in served for a in intent["attempts"])
    )
    results, figures = checks.psp_checks(
        intents, record.charges, record.refunds, simulator_connectors=names
    )
    gathered.psp_record_url = record.url
    gathered.figures["psp"] = {"url": record.url, **figures}
    return results
