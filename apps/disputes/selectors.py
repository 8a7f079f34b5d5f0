"""Dispute reads, scoped to the caller's merchant and mode; the ops queues; dispute rates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.core.errors import NotFoundError
from apps.disputes.models import (
    OPEN_STATUSES,
    Dispute,
    DisputeActivity,
    DisputeNotification,
    EvidenceFile,
)
from apps.intents import selectors as intent_selectors
from apps.ledger import selectors as ledger_selectors


def dispute_list(
    *,
    merchant_id: int,
    livemode: bool,
    status: str | None = None,
    stage: str | None = None,
    payment_intent: str | None = None,
    connector: str | None = None,
    created_gte: datetime | None = None,
    created_lte: datetime | None = None,
) -> QuerySet[Dispute]:
    disputes = Dispute.objects.filter(merchant_id=merchant_id, livemode=livemode).select_related(
        "intent", "connector"
    )
    if status:
        disputes = disputes.filter(status=status)
    if stage:
        disputes = disputes.filter(stage=stage)
    if payment_intent:
        disputes = disputes.filter(intent__public_id=payment_intent)
    if connector:
        disputes = disputes.filter(connector__public_id=connector)
    if created_gte:
        disputes = disputes.filter(created_at__gte=created_gte)
    if created_lte:
        disputes = disputes.filter(created_at__lte=created_lte)
    return disputes


def dispute_get(*, merchant_id: int, livemode: bool, public_id: str) -> Dispute:
    try:
        return dispute_list(merchant_id=merchant_id, livemode=livemode).get(public_id=public_id)
    except Dispute.DoesNotExist:
        raise NotFoundError(f"No such dispute: {public_id!r}.", param="id") from None


def disputes_for_intent(*, intent_id: int) -> list[Dispute]:
    return list(Dispute.objects.filter(intent_id=intent_id).select_related("intent", "connector"))


def disputes_for_intents(*, intent_ids: list[int]) -> dict[int, list[Dispute]]:
    """The disputes of several intents at once (the intent's `expand[]=disputes`)."""
    found: dict[int, list[Dispute]] = {}
    for dispute in Dispute.objects.filter(intent_id__in=intent_ids).select_related(
        "intent", "connector"
    ):
        found.setdefault(dispute.intent_id, []).append(dispute)
    return found


def evidence_file_get(*, merchant_id: int, livemode: bool, public_id: str) -> EvidenceFile | None:
    return EvidenceFile.objects.filter(
        merchant_id=merchant_id, livemode=livemode, public_id=public_id
    ).first()


def parked_notifications() -> QuerySet[DisputeNotification]:
    """Dispute notifications about a payment we do not know: the ops queue."""
    return DisputeNotification.objects.filter(result=DisputeNotification.Result.PARKED)


def dispute_timeline(*, dispute: Dispute) -> list[dict]:
    """Every notification (raw and normalized), our own actions and the journals, by time."""
    items = [
        {
            "at": n.received_at,
            "kind": "notification",
            "title": f"{n.raw_event} ({n.raw_status or '-'}): {n.result}",
            "details": {"normalized": n.normalized, "reason": n.reason, "event": n.psp_event_id},
        }
        for n in DisputeNotification.objects.filter(dispute=dispute)
    ]
    items += [
        {
            "at": a.created_at,
            "kind": a.kind,
            "title": a.kind,
            "details": {**a.details, "actor": a.actor},
        }
        for a in DisputeActivity.objects.filter(dispute=dispute)
    ]
    items += [
        {
            "at": j.created_at,
            "kind": "journal",
            "title": f"{j.kind} {j.public_id}",
            "details": {"description": j.description},
        }
        for j in ledger_selectors.journals_for_source(
            source_id=dispute.public_id, merchant_id=dispute.merchant_id
        )
    ]
    return sorted(items, key=lambda item: item["at"])


def open_disputes_due(*, before: datetime) -> QuerySet[Dispute]:
    return Dispute.objects.filter(
        status__in=OPEN_STATUSES, evidence_due_by__isnull=False, evidence_due_by__lte=before
    )


@dataclass(frozen=True)
class DisputeRate:
    merchant_id: int
    connector_id: int | None
    disputes: int
    disputed_amount: int
    captured: int
    captured_amount: int

    @property
    def count_rate(self) -> float:
        return self.disputes / self.captured if self.captured else 0.0

    @property
    def amount_rate(self) -> float:
        return self.disputed_amount / self.captured_amount if self.captured_amount else 0.0


def dispute_rates(
    *, merchant_id: int | None = None, days: int = 30, now: datetime | None = None
) -> list[DisputeRate]:
    """Disputes opened over payments captured in the last `days`, per merchant and connector
    (count and amount; amounts summed across currencies in minor units, as the schemes count
    them per programme). Card schemes act on these (Visa's dispute monitoring, Mastercard's
    excessive-chargeback programme)."""
    since = (now or timezone.now()) - timedelta(days=days)
    disputes = Dispute.objects.filter(created_at__gte=since)
    if merchant_id is not None:
        disputes = disputes.filter(merchant_id=merchant_id)
    opened = {
        (row["merchant_id"], row["connector_id"]): row
        for row in disputes.values("merchant_id", "connector_id").annotate(
            count=Count("id"), amount=Sum("amount")
        )
    }
    captured: dict[tuple, dict] = {}
    for row in intent_selectors.intent_captured_totals(since=since, merchant_id=merchant_id):
        key = (row["merchant_id"], row["connector_id"])
        entry = captured.setdefault(key, {"count": 0, "amount": 0})
        entry["count"] += row["count"]
        entry["amount"] += row["amount"] or 0
    rates = []
    for key in sorted(set(opened) | set(captured), key=lambda k: (k[0], k[1] or 0)):
        rates.append(
            DisputeRate(
                merchant_id=key[0],
                connector_id=key[1],
                disputes=opened.get(key, {}).get("count", 0),
                disputed_amount=opened.get(key, {}).get("amount", 0) or 0,
                captured=captured.get(key, {}).get("count", 0),
                captured_amount=captured.get(key, {}).get("amount", 0),
            )
        )
    return rates


def dispute_rate_for_merchant(*, merchant_id: int, days: int = 30) -> DisputeRate:
    """The merchant's rate over all its connectors."""
    rates = dispute_rates(merchant_id=merchant_id, days=days)
    return DisputeRate(
        merchant_id=merchant_id,
        connector_id=None,
        disputes=sum(r.disputes for r in rates),
        disputed_amount=sum(r.disputed_amount for r in rates),
        captured=sum(r.captured for r in rates),
        captured_amount=sum(r.captured_amount for r in rates),
    )


def open_dispute_filter() -> Q:
    return Q(status__in=OPEN_STATUSES)


def audit_dispute_totals_mismatched() -> list[dict]:
    """Payments whose `amount_disputed` is not what their disputes hold withdrawn from the
    merchant (the money audit's dispute check)."""
    rows = (
        Dispute.objects.values("intent_id", "intent__public_id", "intent__amount_disputed")
        .annotate(held=Coalesce(Sum("amount_taken", filter=Q(funds_withdrawn=True)), 0))
        .order_by("intent_id")
    )
    return [
        {
            "public_id": row["intent__public_id"],
            "amount_disputed": row["intent__amount_disputed"],
            "held": row["held"],
        }
        for row in rows
        if row["held"] != row["intent__amount_disputed"]
    ]


def settlement_expectations(*, connector_ids: list[int], since):
    """What we expect a PSP to settle for disputes (issue 14, reconciliation), in the shape of
    `apps.intents.selectors.settlement_expectations` plus `x_fee`: each dispute whose funds the
    PSP withdrew (kind `chargeback`: the disputed amount, withdrawn, with the dispute fee the
    ledger booked) and each it reinstated (kind `reversal`: the amount back, with the fee it
    returned, negative). Amounts are positive; the reconciliation signs them by kind. The PSP
    reference is the payment's, the modification reference the PSP's dispute id. A values
    queryset compiled into the set-based matching SQL (never iterated row by row).

    One row per dispute and kind: a second withdrawal of the same dispute (an Adyen second
    chargeback) settles as a duplicate of the first."""
    from django.db.models import BigIntegerField, CharField, DateTimeField, F, Value
    from django.db.models.functions import NullIf

    text = CharField()
    disputes = Dispute.objects.filter(connector_id__in=connector_ids, created_at__gte=since)
    common = {
        "x_object_id": F("id"),
        "x_public_id": F("public_id"),
        "x_psp_reference": Coalesce(
            NullIf("psp_reference", Value("")), "intent__psp_reference", output_field=text
        ),
        "x_modification_reference": F("psp_dispute_id"),
        "x_merchant_reference": Value("", output_field=text),
        "x_amount": F("amount"),
        "x_currency": F("currency"),
        "x_merchant_id": F("merchant_id"),
        "x_livemode": F("livemode"),
        "x_connector_id": F("connector_id"),
    }
    withdrawals = (
        disputes.filter(withdrawals_seen__gte=1)
        .annotate(
            x_kind=Value("chargeback", output_field=text),
            **common,
            x_occurred_at=F("created_at"),
            x_fee=F("fees_charged"),
        )
        .values(*SETTLEMENT_EXPECTATION_FIELDS)
    )
    reinstatements = (
        disputes.filter(reinstatements_seen__gte=1, withdrawals_seen__gte=1)
        .annotate(
            x_kind=Value("reversal", output_field=text),
            **common,
            x_occurred_at=Coalesce("closed_at", "updated_at", output_field=DateTimeField()),
            x_fee=Value(0, output_field=BigIntegerField()) - F("fees_returned"),
        )
        .values(*SETTLEMENT_EXPECTATION_FIELDS)
    )
    return withdrawals.union(reinstatements, all=True)


SETTLEMENT_EXPECTATION_FIELDS = (
    "x_kind",
    "x_object_id",
    "x_public_id",
    "x_psp_reference",
    "x_modification_reference",
    "x_merchant_reference",
    "x_amount",
    "x_currency",
    "x_merchant_id",
    "x_livemode",
    "x_connector_id",
    "x_occurred_at",
    "x_fee",
)


def settlement_objects(*, object_ids: list[int]) -> dict[int, dict]:
    """Our side of a chargeback's reconciliation discrepancy, for the finance screens."""
    rows = Dispute.objects.filter(id__in=object_ids).values(
        "id",
        "public_id",
        "amount",
        "currency",
        "status",
        "stage",
        "psp_dispute_id",
        "psp_reference",
        "fees_charged",
        "fees_returned",
        "merchant_id",
        "created_at",
    )
    return {row["id"]: row for row in rows}
