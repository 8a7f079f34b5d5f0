"""Reconciliation runs (issue 14, items 2, 3, 5, 7): fetch new reports through the connector
gateway, store each raw with its hash, load, match and post each all or nothing, then look for
what is missing, count, and tell the merchant through the outbox.

A run is safe to re-run: a report already loaded (same bytes: same SHA-256) is recognized and
skipped, every posting has its idempotency key, and missing items are flagged once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.connectors import gateway
from apps.connectors import selectors as connector_selectors
from apps.core import metrics
from apps.core.audit import Actor, audit_record
from apps.core.errors import InvalidRequestError
from apps.events import services as event_services
from apps.reconciliation.models import (
    ReconciliationProfile,
    ReconciliationRun,
    SettlementLine,
    SettlementReport,
)
from apps.reconciliation.services import storage
from apps.reconciliation.services.loading import expectations_sql, load_report
from apps.reconciliation.services.posting import post_report

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]

# Adyen Interchange++ (markup, scheme fee, interchange) and Stripe's blended price: the terms the
# simulator charges, as a profile's default agreed fee (edit per contract in the admin)
DEFAULT_FEE_TERMS = {
    "adyen": (11, [30, 20, 80]),
    "stripe": (25, [150]),
}


def _quiet(message: str) -> None:
    logger.info("reconciliation: %s", message)


def profile_for(*, connector, create: bool = True) -> ReconciliationProfile | None:
    """The connector's reconciliation profile, created with defaults on first use."""
    profile = ReconciliationProfile.objects.filter(connector=connector).first()
    if profile is None and create:
        fixed, components = DEFAULT_FEE_TERMS.get(connector.connector_type, (0, []))
        profile, _ = ReconciliationProfile.objects.get_or_create(
            connector=connector,
            defaults={
                "fee_fixed": fixed,
                "fee_components_bps": components,
                "expect_since": timezone.now() - timedelta(days=30),
                # Stripe: report runs per day from today on; Adyen: batch numbers from 1
                "report_cursor": (timezone.now() - timedelta(days=1)).date().isoformat()
                if connector.connector_type == "stripe"
                else "",
            },
        )
    return profile


def business_days_before(day: date, days: int) -> date:
    """`days` business days (Monday to Friday) before `day`."""
    current = day
    while days > 0:
        current -= timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current


# -- receiving a file ------------------------------------------------------------------------------


def report_receive(
    *, connector, name: str, chunks: Iterable[bytes], source: str
) -> tuple[SettlementReport, bool]:
    """Stores the raw bytes first (hash-named) and records the report; (report, is_new). The
    same bytes a second time are recognized by (connector, sha256) and not recorded again."""
    path, sha, size = storage.store_raw(connector_public_id=connector.public_id, chunks=chunks)
    existing = SettlementReport.objects.filter(connector=connector, sha256=sha).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            report = SettlementReport.objects.create(
                connector=connector,
                name=name[:200],
                sha256=sha,
                size=size,
                path=path,
                source=source,
            )
    except IntegrityError:  # the same file received concurrently
        return SettlementReport.objects.get(connector=connector, sha256=sha), False
    return report, True


def _load(*, report, run, profile, connector, progress: Progress) -> dict:
    """One report, all or nothing; a refusal is recorded on the report and the run."""
    started = time.monotonic()
    try:
        with transaction.atomic():
            timings, discrepancy_ids = load_report(
                report=report, run=run, profile=profile, connector=connector
            )
            step = time.monotonic()
            posted = post_report(report=report, connector=connector)
            timings["post"] = time.monotonic() - step
            step = time.monotonic()
            _emit_discrepancies(discrepancy_ids, connector)
            timings["events"] = time.monotonic() - step
            report.status = SettlementReport.Status.LOADED
            report.loaded_at = timezone.now()
            report.run = run
            report.save(update_fields=["status", "loaded_at", "run", "line_count"])
    except gateway.ReportParseError as exc:
        SettlementReport.objects.filter(pk=report.pk).update(
            status=SettlementReport.Status.REFUSED,
            error=str(exc)[:2000],
            error_line=exc.line or None,
            error_column=exc.column[:100],
            run=run,
        )
        progress(f"refused {report.name}: {exc}")
        return {"refused": str(exc)}
    progress(
        f"loaded {report.name}: {report.line_count} lines, {len(discrepancy_ids)} discrepancies,"
        f" {posted['journals']} journals in {time.monotonic() - started:.1f} s"
    )
    return {"timings": timings, "posted": posted}


# the payload of `reconciliation.discrepancy.created`, built in SQL for thousands at once (the
# same fields as selectors.discrepancy_representation)
DISCREPANCY_EVENTS = """
SELECT d.merchant_id, d.livemode, 'reconciliation.discrepancy', d.public_id,
       'reconciliation.discrepancy.created',
       jsonb_build_object(
           'id', d.public_id, 'object', 'reconciliation.discrepancy',
           'connector', %s::text, 'kind', d.kind, 'status', d.status,
           'reference', d.reference, 'expected', NULLIF(d.expected_public_id, ''),
           'currency', d.currency, 'our_amount', d.our_amount, 'psp_amount', d.psp_amount,
           'our_fee', d.our_fee, 'psp_fee', d.psp_fee, 'difference', d.difference,
           'tolerance', d.tolerance, 'match_key', NULLIF(d.match_key, ''),
           'created', extract(epoch FROM d.created_at)::bigint)
FROM unnest(%s::bigint[]) AS ids (id)
JOIN reconciliation_discrepancy d ON d.id = ids.id
ORDER BY d.id"""
# (a join on the ids, not `d.id = ANY(array)`: rows inserted in this transaction have no
# statistics yet, and a sequential scan testing each row against a 20,000-element array is
# quadratic)


def _emit_discrepancies(ids: list[int], connector) -> None:
    if ids:
        event_services.outbox_record_select(
            select_sql=DISCREPANCY_EVENTS, params=[connector.public_id, ids]
        )


# -- a run -----------------------------------------------------------------------------------------


def reconciliation_run(
    *,
    connector,
    run_date: date | None = None,
    trigger: str = ReconciliationRun.Trigger.BEAT,
    reports: list[SettlementReport] | None = None,
    fetch: bool = True,
    progress: Progress = _quiet,
    actor: Actor | None = None,
) -> ReconciliationRun:
    """Fetches the connector's new reports up to `run_date` (default: yesterday, UTC), loads each
    (or only `reports`, for an upload), flags what is missing past the settlement window,
    counts, and records `reconciliation.run.completed`."""
    run_date = run_date or (timezone.now() - timedelta(days=1)).date()
    profile = profile_for(connector=connector)
    run = ReconciliationRun.objects.create(
        connector=connector,
        merchant_id=connector.merchant_id,
        livemode=connector.livemode,
        run_date=run_date,
        trigger=trigger,
        started_at=timezone.now(),
    )
    progress(f"run {run.public_id}: connector {connector.public_id}, date {run_date}")
    timings: dict[str, float] = {}
    try:
        if reports is None:
            reports = []
            if fetch:
                step = time.monotonic()
                reports = _fetch(connector=connector, profile=profile, run=run, until=run_date)
                timings["fetch"] = time.monotonic() - step
                progress(f"fetched {len(reports)} new report(s)")
        for report in reports:
            if report.status != SettlementReport.Status.RECEIVED:
                run.reports_already_loaded += 1
                progress(f"already {report.status}: {report.name} (sha256 {report.sha256[:12]}…)")
                continue
            outcome = _load(
                report=report, run=run, profile=profile, connector=connector, progress=progress
            )
            if "refused" in outcome:
                run.reports_refused += 1
                run.error = (run.error + "\n" if run.error else "") + outcome["refused"]
            else:
                run.reports_loaded += 1
                for phase, seconds in outcome["timings"].items():
                    timings[phase] = timings.get(phase, 0.0) + seconds
        step = time.monotonic()
        with transaction.atomic():
            missing_ids, expected = _flag_missing(
                run=run, profile=profile, connector=connector, run_date=run_date
            )
            _emit_discrepancies(missing_ids, connector)
        timings["missing"] = time.monotonic() - step
        if missing_ids:
            progress(f"{len(missing_ids)} item(s) missing past the settlement window")
        run.counts, run.amounts = _figures(run=run, expected=expected)
        run.status = ReconciliationRun.Status.SUCCEEDED
    except Exception as exc:
        logger.exception("reconciliation run %s failed", run.public_id)
        run.status = ReconciliationRun.Status.FAILED
        run.error = (run.error + "\n" if run.error else "") + f"{type(exc).__name__}: {exc}"
    run.finished_at = timezone.now()
    run.timings = {k: round(v, 3) for k, v in timings.items()}
    with transaction.atomic():
        run.save()
        event_services.outbox_record(
            merchant_id=connector.merchant_id,
            livemode=connector.livemode,
            object_type="reconciliation.run",
            object_id=run.public_id,
            event_type="reconciliation.run.completed",
            payload=run_representation(run, connector_public_id=connector.public_id),
        )
        if actor is not None:
            audit_record(
                actor=actor,
                action="reconciliation.run",
                object_type="reconciliation_run",
                object_id=run.public_id,
                merchant_id=connector.merchant_id,
                livemode=connector.livemode,
                changes={"status": run.status, "run_date": str(run_date)},
            )
    metrics.reconciliation_run_finished(
        psp=connector.connector_type,
        succeeded=run.status == ReconciliationRun.Status.SUCCEEDED,
        discrepancies={
            kind: figures["count"]
            for kind, figures in (run.counts or {}).get("discrepancies", {}).items()
        },
    )
    progress(f"run {run.public_id} {run.status}: {summary_line(run)}")
    return run


def _fetch(*, connector, profile, run, until: date) -> list[SettlementReport]:
    refs = gateway.settlement_reports_list(
        connector=connector, cursor=profile.report_cursor, until=until.isoformat()
    )
    reports = []
    for ref in refs:
        chunks = gateway.settlement_report_download(connector=connector, ref=ref)
        report, _ = report_receive(
            connector=connector,
            name=ref.name,
            chunks=chunks,
            source=SettlementReport.Source.FETCHED,
        )
        reports.append(report)
        profile.report_cursor = ref.cursor
        profile.save(update_fields=["report_cursor"])
    return reports


# our expected items that no report line names, once per run (a temporary table both the
# missing and the still-expected figures read)
UNMATCHED = """
CREATE TEMP TABLE recon_unmatched ON COMMIT DROP AS
SELECT e.* FROM ({expectations}) e
WHERE NOT EXISTS (SELECT 1 FROM reconciliation_line l
                  WHERE l.expected_kind = e.x_kind AND l.expected_id = e.x_object_id)"""

MISSING = """
INSERT INTO reconciliation_discrepancy (
    public_id, run_id, connector_id, merchant_id, livemode, kind, status, line_id, report_id,
    payout_id, expected_kind, expected_id, expected_public_id, reference, currency, our_amount,
    psp_amount, our_fee, psp_fee, difference, tolerance, match_key, occurred_on, resolution,
    resolution_note, resolved_by, journal, reopen_count, created_at)
SELECT 'dsc_' || replace(gen_random_uuid()::text, '-', ''), %(run)s, %(connector)s,
       %(merchant)s, %(livemode)s, 'missing_in_report', 'open', NULL, NULL, '', e.x_kind,
       e.x_object_id, e.x_public_id,
       CASE WHEN e.x_kind IN ('refund', 'chargeback', 'reversal') THEN e.x_modification_reference
            ELSE e.x_psp_reference END,
       e.x_currency, e.x_amount, NULL, NULL, NULL, -e.x_amount, %(tolerance)s, '',
       e.x_occurred_at::date, '', '', '', '', 0, now()
FROM recon_unmatched e
WHERE e.x_occurred_at < %(cutoff)s
  AND NOT EXISTS (SELECT 1 FROM reconciliation_discrepancy d
                  WHERE d.kind = 'missing_in_report' AND d.expected_kind = e.x_kind
                    AND d.expected_id = e.x_object_id)
RETURNING id"""

EXPECTED_COUNT = """
SELECT count(*), COALESCE(sum(e.x_amount), 0) FROM recon_unmatched e
WHERE e.x_occurred_at >= %(cutoff)s"""

MATCHED_LATER = """
UPDATE reconciliation_discrepancy d
SET status = 'resolved', resolution = 'matched_later', resolved_by = 'system',
    resolved_at = now()
WHERE d.connector_id = %s AND d.kind = 'missing_in_report' AND d.status <> 'resolved'
  AND EXISTS (SELECT 1 FROM reconciliation_line l
              WHERE l.expected_kind = d.expected_kind AND l.expected_id = d.expected_id
                AND l.state = 'matched')"""


def _flag_missing(*, run, profile, connector, run_date: date) -> tuple[list[int], dict]:
    """Items we expect, not in any report: an exception once the settlement window (business
    days) has passed, until then only counted as `expected`."""
    cutoff_day = business_days_before(run_date, profile.settlement_window_days)
    cutoff = datetime(cutoff_day.year, cutoff_day.month, cutoff_day.day, tzinfo=UTC)
    cutoff += timedelta(days=1)  # items of the cutoff day itself are due
    e_sql, e_params = expectations_sql(connector_ids=[connector.pk], since=profile.expect_since)
    params = {f"e{i}": value for i, value in enumerate(e_params)}
    e_named = e_sql % tuple(f"%(e{i})s" for i in range(len(e_params)))
    common = {
        "run": run.pk,
        "connector": connector.pk,
        "merchant": connector.merchant_id,
        "livemode": connector.livemode,
        "tolerance": profile.tolerance,
        "cutoff": cutoff,
    }
    with connection.cursor() as cursor:
        cursor.execute(MATCHED_LATER, [connector.pk])
        cursor.execute("DROP TABLE IF EXISTS recon_unmatched")
        cursor.execute(UNMATCHED.format(expectations=e_named), params)
        cursor.execute(MISSING, common)
        ids = [row[0] for row in cursor.fetchall()]
        cursor.execute(EXPECTED_COUNT, common)
        count, amount = cursor.fetchone()
        cursor.execute("DROP TABLE recon_unmatched")
    return ids, {"count": count, "amount": int(amount)}


FIGURES = """
SELECT state, currency, count(*), COALESCE(sum(net), 0), COALESCE(sum(fee), 0),
       COALESCE(sum(estimated_fee) FILTER (WHERE state = 'matched'), 0),
       count(*) FILTER (WHERE late)
FROM reconciliation_line
WHERE report_id IN (SELECT id FROM reconciliation_settlementreport WHERE run_id = %s)
  AND run_id = %s
GROUP BY state, currency"""

DISCREPANCY_FIGURES = """
SELECT kind, count(*), COALESCE(sum(abs(difference)), 0)
FROM reconciliation_discrepancy WHERE run_id = %s GROUP BY kind"""


def _figures(*, run, expected: dict) -> tuple[dict, dict]:
    counts: dict = {"lines": {}, "discrepancies": {}, "expected": expected, "late": 0}
    amounts: dict = {}
    with connection.cursor() as cursor:
        cursor.execute(FIGURES, [run.pk, run.pk])
        for state, currency, count, net, fee, estimated, late in cursor.fetchall():
            entry = counts["lines"].setdefault(state, {"count": 0, "net": {}})
            entry["count"] += count
            entry["net"][currency] = int(net)
            counts["late"] += late
            if state == "matched":
                money = amounts.setdefault(currency, {})
                money["matched_net"] = int(net)
                money["fees_actual"] = int(fee)
                money["fees_estimated"] = int(estimated)
            if state == "payout":
                amounts.setdefault(currency, {})["payouts"] = int(-net)
        cursor.execute(DISCREPANCY_FIGURES, [run.pk])
        for kind, count, amount in cursor.fetchall():
            counts["discrepancies"][kind] = {"count": count, "amount": int(amount)}
    return counts, amounts


def summary_line(run: ReconciliationRun) -> str:
    lines = run.counts.get("lines", {})
    matched = lines.get("matched", {}).get("count", 0)
    discrepancies = sum(d["count"] for d in run.counts.get("discrepancies", {}).values())
    expected = run.counts.get("expected", {}).get("count", 0)
    return (
        f"{run.reports_loaded} loaded, {run.reports_refused} refused, "
        f"{run.reports_already_loaded} already loaded; {matched} matched, "
        f"{discrepancies} discrepancies, {expected} still expected"
    )


def run_representation(run: ReconciliationRun, *, connector_public_id: str) -> dict:
    return {
        "id": run.public_id,
        "object": "reconciliation.run",
        "connector": connector_public_id,
        "run_date": run.run_date.isoformat(),
        "status": run.status,
        "reports_loaded": run.reports_loaded,
        "reports_refused": run.reports_refused,
        "counts": run.counts,
        "amounts": run.amounts,
        "created": int(run.started_at.timestamp()),
    }


# -- entry points ----------------------------------------------------------------------------------


def reconciliation_run_all(*, run_date: date | None = None, trigger: str = "beat") -> list:
    """Every connector with an enabled profile (the nightly beat task)."""
    runs = []
    for profile in ReconciliationProfile.objects.filter(enabled=True).select_related("connector"):
        runs.append(
            reconciliation_run(connector=profile.connector, run_date=run_date, trigger=trigger)
        )
    return runs


def report_upload(*, connector, name: str, chunks: Iterable[bytes], actor: Actor):
    """A file a PSP sent by other means, uploaded in the admin: stored, then loaded in its own
    run (or recognized as already received)."""
    if not name:
        raise InvalidRequestError("The file needs a name.", code="parameter_missing", param="file")
    report, is_new = report_receive(
        connector=connector, name=name, chunks=chunks, source=SettlementReport.Source.UPLOADED
    )
    run = reconciliation_run(
        connector=connector,
        run_date=timezone.now().date(),
        trigger=ReconciliationRun.Trigger.UPLOAD,
        reports=[report],
        actor=actor,
    )
    return report, is_new, run


def connector_for_reconciliation(*, public_id: str):
    return connector_selectors.connector_get_unscoped(public_id=public_id)


__all__ = [
    "SettlementLine",
    "business_days_before",
    "profile_for",
    "reconciliation_run",
    "reconciliation_run_all",
    "report_receive",
    "report_upload",
]
