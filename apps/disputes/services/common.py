"""What the dispute services share: the lock, the outbox record, the timeline, the
intent's dispute flag, the two axes' moves."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.utils import timezone

from apps.core.audit import Actor
from apps.disputes.models import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    Dispute,
    DisputeActivity,
    DisputeNotification,
    DisputeStage,
    DisputeStatus,
)
from apps.disputes.representations import dispute_representation
from apps.events.services import outbox_record_change
from apps.intents import services as intent_services

logger = logging.getLogger("apps.disputes.services")
ST = DisputeStatus
R = DisputeNotification.Result


def _emit(dispute: Dispute, event_type: str, previous: dict | None = None) -> None:
    outbox_record_change(
        obj=dispute,
        object_type="dispute",
        event_type=event_type,
        payload=dispute_representation(dispute),
        previous=previous,
    )


def _lock(dispute_id: int) -> Dispute:
    return (
        Dispute.objects.select_for_update(of=("self",))
        .select_related("intent", "connector")
        .get(pk=dispute_id)
    )


def _activity(dispute: Dispute, kind: str, actor: Actor | str = "", **details) -> None:
    name = actor if isinstance(actor, str) else str(getattr(actor, "name", "") or actor)
    DisputeActivity.objects.create(dispute=dispute, kind=kind, actor=name[:120], details=details)


def _blocks_refunds(dispute: Dispute) -> bool:
    """Open, and not an inquiry the PSP says may still be refunded (Stripe's rule)."""
    if dispute.status not in OPEN_STATUSES:
        return False
    return not (dispute.stage == DisputeStage.INQUIRY and dispute.is_charge_refundable)


def _sync_intent_flag(dispute: Dispute) -> None:
    blocking = any(_blocks_refunds(d) for d in Dispute.objects.filter(intent_id=dispute.intent_id))
    intent_services.intent_dispute_mark(intent_id=dispute.intent_id, open=blocking)


def _move(dispute: Dispute, *, stage: str, status: str) -> None:
    if stage != dispute.stage:
        dispute.move_stage(stage)
    if status != dispute.status:
        dispute.move_status(status)
        if status in CLOSED_STATUSES:
            dispute.closed_at = timezone.now()
        elif dispute.closed_at is not None:  # a new stage reopened it
            dispute.closed_at = None


def _dt(unix: int | None) -> datetime | None:
    return datetime.fromtimestamp(unix, tz=UTC) if unix else None
