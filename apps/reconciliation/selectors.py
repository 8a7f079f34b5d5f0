"""Reconciliation reads (issue 14): the finance screens, the CSV export, representations."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from django.db.models import QuerySet

from apps.ledger import chart
from apps.ledger import selectors as ledger_selectors
from apps.reconciliation.models import Discrepancy, ReconciliationRun, SettlementLine

EXPORT_COLUMNS = (
    "id",
    "kind",
    "status",
    "connector",
    "merchant_id",
    "reference",
    "expected",
    "currency",
    "our_amount",
    "psp_amount",
    "our_fee",
    "psp_fee",
    "difference",
    "tolerance",
    "match_key",
    "occurred_on",
    "resolution",
    "resolved_by",
    "created_at",
)


def discrepancy_queue() -> QuerySet[Discrepancy]:
    """Open discrepancies, oldest first."""
    return Discrepancy.objects.filter(status=Discrepancy.Status.OPEN).order_by("created_at", "id")


def discrepancy_representation(d: Discrepancy, *, connector_public_id: str) -> dict:
    return {
        "id": d.public_id,
        "object": "reconciliation.discrepancy",
        "connector": connector_public_id,
        "kind": d.kind,
        "status": d.status,
        "reference": d.reference,
        "expected": d.expected_public_id or None,
        "currency": d.currency,
        "our_amount": d.our_amount,
        "psp_amount": d.psp_amount,
        "our_fee": d.our_fee,
        "psp_fee": d.psp_fee,
        "difference": d.difference,
        "tolerance": d.tolerance,
        "match_key": d.match_key or None,
        "created": int(d.created_at.timestamp()),
    }


def run_discrepancies_csv(*, run: ReconciliationRun) -> Iterator[str]:
    """A run's discrepancies as CSV, streamed a row at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def take() -> str:
        value = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return value

    writer.writerow(EXPORT_COLUMNS)
    yield take()
    rows = Discrepancy.objects.filter(run=run).select_related("connector").order_by("id")
    for d in rows.iterator(chunk_size=2000):
        writer.writerow(
            [
                d.public_id,
                d.kind,
                d.status,
                d.connector.public_id,
                d.merchant_id,
                d.reference,
                d.expected_public_id,
                d.currency,
                d.our_amount,
                d.psp_amount,
                d.our_fee,
                d.psp_fee,
                d.difference,
                d.tolerance,
                d.match_key,
                d.occurred_on,
                d.resolution,
                d.resolved_by,
                d.created_at.isoformat(),
            ]
        )
        yield take()


def discrepancy_sides(d: Discrepancy) -> dict:
    """Both sides of a discrepancy for the side-by-side view."""
    from apps.intents import selectors as intent_selectors

    ours = None
    if d.expected_id is not None and d.expected_kind in ("chargeback", "reversal"):
        from apps.disputes import selectors as dispute_selectors

        ours = dispute_selectors.settlement_objects(object_ids=[d.expected_id]).get(d.expected_id)
    elif d.expected_id is not None and d.expected_kind:
        ours = intent_selectors.settlement_objects(
            kind=d.expected_kind, object_ids=[d.expected_id]
        ).get(d.expected_id)
    line = SettlementLine.objects.filter(pk=d.line_id).first() if d.line_id else None
    return {"ours": ours, "line": line}


def fee_comparison(*, connector_id: int | None = None) -> list[dict]:
    """Estimated (booked at capture) against actual (the reports) fees, per connector and
    currency, over matched lines."""
    from django.db.models import Count, Sum

    rows = SettlementLine.objects.filter(state="matched", expected_kind="capture")
    if connector_id is not None:
        rows = rows.filter(connector_id=connector_id)
    return list(
        rows.values("connector_id", "currency")
        .annotate(
            lines=Count("id"),
            estimated=Sum("estimated_fee"),
            actual=Sum("fee"),
        )
        .order_by("connector_id", "currency")
    )


def clearing_balance(*, merchant_id: int, livemode: bool, currency: str, connector: str) -> int:
    return ledger_selectors.account_balance(
        merchant_id=merchant_id,
        livemode=livemode,
        currency=currency,
        code=chart.settlement_clearing(connector),
    )
