"""The run as text (what `manage.py money_audit` prints) and as JSON (`--json`, the soak)."""

from __future__ import annotations

from apps.money_audit.models import MoneyAuditRun
from apps.money_audit.selectors import run_checks

SHOWN_OFFENDERS = 20


def _counts(values: dict) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(values.items())) or "none"


def as_dict(run: MoneyAuditRun) -> dict:
    return {
        "run": run.pk,
        "status": run.status,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "held": run.checks_held,
        "broken": run.checks_broken,
        "skipped": run.checks_skipped,
        "psp_record_url": run.psp_record_url,
        "parameters": run.parameters,
        "figures": run.figures,
        "checks": [
            {
                "name": check.name,
                "title": check.title,
                "status": check.status,
                "offender_count": check.offender_count,
                "offenders": check.offenders,
                "detail": check.detail,
            }
            for check in run_checks(run=run)
        ],
    }


def as_text(run: MoneyAuditRun, *, shown: int = SHOWN_OFFENDERS) -> str:
    figures = run.figures
    when = f"{run.started_at:%Y-%m-%d %H:%M:%S} UTC"
    lines = [f"Money audit #{run.pk} ({when}, {figures.get('seconds')} s)"]
    lines.append("figures")
    lines.append(
        f"  payment intents   {sum(figures.get('intents', {}).values()):>8}  "
        f"({_counts(figures.get('intents', {}))})"
    )
    lines.append(
        f"  attempts          {sum(figures.get('attempts', {}).values()):>8}  "
        f"({_counts(figures.get('attempts', {}))})"
    )
    lines.append(
        f"  refunds           {sum(figures.get('refunds', {}).values()):>8}  "
        f"({_counts(figures.get('refunds', {}))})"
    )
    ledger = figures.get("ledger", {})
    lines.append(
        f"  ledger            journals {ledger.get('journals')}, accounts "
        f"{ledger.get('accounts')}, entries {ledger.get('entries')} "
        f"(drift check #{run.drift_check_run_id})"
    )
    events = figures.get("events", {})
    lines.append(
        f"  events            outbox {events.get('outbox')} (unrelayed "
        f"{events.get('outbox_unrelayed')}), events {events.get('events')}"
    )
    lines.append(f"  webhooks out      {_counts(events.get('deliveries', {}))}")
    lines.append(f"  PSP webhooks in   {_counts(events.get('psp_webhooks', {}))}")
    psp = figures.get("psp", {})
    if "url" in psp:
        lines.append(
            f"  PSP record        {psp['url']}: {psp['charges']} charges "
            f"({psp['charges_ours']} ours), {psp['refunds']} refunds, "
            f"{psp['intents_compared']} intents compared"
        )
    else:
        lines.append("  PSP record        none (PSP-side checks skipped)")
    scan = figures.get("card_scan", {})
    lines.append(
        f"  card scan         {scan.get('columns')} columns, {scan.get('log_files')} log files "
        f"({scan.get('log_lines')} lines)"
    )
    lines.append("invariants")
    last_reason = None
    for check in run_checks(run=run):
        label = {"held": "HELD   ", "broken": "BROKEN ", "skipped": "SKIPPED"}[check.status]
        count = f" ({check.offender_count})" if check.status == "broken" else ""
        lines.append(f"  {label} {check.name}{count}: {check.title}")
        if check.status == "skipped" and check.detail != last_reason:
            lines.append(f"           {check.detail}")
            last_reason = check.detail
        for offender in check.offenders[:shown]:
            lines.append(f"           {offender['id']}  {offender['detail']}")
        if check.offender_count > shown:
            lines.append(f"           … and {check.offender_count - shown} more (see the admin)")
    verdict = (
        f"{run.checks_broken} of {run.checks_held + run.checks_broken} invariants BROKEN"
        if run.status == MoneyAuditRun.Status.FAILED
        else f"every invariant held ({run.checks_held} held, {run.checks_skipped} skipped)"
    )
    lines.append(f"result: {verdict}")
    return "\n".join(lines)
