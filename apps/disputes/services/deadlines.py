"""The deadlines beat task: reminders 72 h and 24 h before the due date, then expiry."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from apps.disputes.models import (
    Dispute,
    DisputeStage,
)
from apps.disputes.services.common import (
    ST,
    _activity,
    _emit,
    _lock,
    _move,
    _sync_intent_flag,
)


def disputes_check_deadlines(*, now: datetime | None = None) -> dict[str, int]:
    """Beat task body: a reminder (event + admin flag) 72 h and 24 h before `evidence_due_by`,
    and `expired` for disputes whose due date passed without an answer (the PSP's notification
    confirms it later; it cannot move an expired dispute back)."""
    now = now or timezone.now()
    counts = {"reminded_72h": 0, "reminded_24h": 0, "expired": 0}
    due = Dispute.objects.filter(
        status__in=[ST.WARNING_NEEDS_RESPONSE, ST.NEEDS_RESPONSE],
        evidence_due_by__isnull=False,
        evidence_due_by__lte=now + timedelta(hours=72),
    ).values_list("pk", flat=True)
    for dispute_id in list(due):
        with transaction.atomic():
            dispute = _lock(dispute_id)
            if dispute.status not in (ST.WARNING_NEEDS_RESPONSE, ST.NEEDS_RESPONSE):
                continue
            if dispute.evidence_submitted_stage == dispute.stage:
                continue  # being answered right now
            before = {"status": dispute.status}
            if dispute.evidence_due_by <= now:
                target = ST.WARNING_CLOSED if dispute.stage == DisputeStage.INQUIRY else ST.EXPIRED
                _move(dispute, stage=dispute.stage, status=target)
                dispute.needs_attention = False
                dispute.save()
                _sync_intent_flag(dispute)
                _activity(dispute, "expired", "deadlines")
                _emit(dispute, "dispute.closed", before)
                counts["expired"] += 1
                continue
            left = dispute.evidence_due_by - now
            if left <= timedelta(hours=24) and dispute.reminded_24h_at is None:
                dispute.reminded_24h_at = now
                dispute.reminded_72h_at = dispute.reminded_72h_at or now
                counts["reminded_24h"] += 1
            elif dispute.reminded_72h_at is None:
                dispute.reminded_72h_at = now
                counts["reminded_72h"] += 1
            else:
                continue
            dispute.needs_attention = True
            dispute.save()
            _activity(dispute, "reminder", "deadlines", due_by=dispute.evidence_due_by.isoformat())
            _emit(dispute, "dispute.updated", {"evidence_details": {"reminder": None}})
    return counts
