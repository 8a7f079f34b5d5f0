"""PSP dispute notifications applied forward only; unknown payments parked for ops."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.connectors import selectors as connector_selectors
from apps.core import metrics
from apps.core.audit import Actor, audit_record
from apps.core.errors import ConflictError
from apps.disputes import lifecycle
from apps.disputes.models import (
    CLOSED_STATUSES,
    Dispute,
    DisputeNotification,
    DisputeStage,
)
from apps.disputes.services.common import (
    ST,
    R,
    _dt,
    _emit,
    _lock,
    _move,
    _sync_intent_flag,
    logger,
)
from apps.disputes.services.money import _follow_funds
from apps.events.notifications import NotificationOutcome
from apps.intents import selectors as intent_selectors
from apps.intents import services as intent_services
from apps.psp_adapters.contract import WebhookEvent


def _record(
    *, connector, event: WebhookEvent, result: str, reason: str, dispute=None, intent_id=None
) -> None:
    notice = event.dispute
    DisputeNotification.objects.create(
        dispute=dispute,
        connector_id=connector.pk,
        merchant_id=connector.merchant_id,
        livemode=connector.livemode,
        intent_id=intent_id,
        psp_event_id=event.psp_event_id[:255],
        psp_dispute_id=(notice.psp_dispute_id if notice else "")[:100],
        psp_reference=event.psp_reference[:100],
        raw_event=(notice.raw_event if notice else event.raw_code)[:60],
        raw_status=(notice.raw_status if notice else "")[:40],
        normalized={
            "stage": notice.stage if notice else "",
            "status": notice.status if notice else "",
            "reason": notice.reason if notice else "",
            "network_reason_code": notice.network_reason_code if notice else "",
            "evidence_due_by": notice.evidence_due_by if notice else None,
            "funds": notice.funds if notice else "",
            "amount": event.amount,
            "currency": event.currency,
        },
        result=result,
        reason=reason[:300],
        occurred_at=_dt(event.occurred_at),
    )


def dispute_apply_notification(*, connector_id: int, event: WebhookEvent) -> NotificationOutcome:
    """Applies one dispute notification (the handler of event type "chargeback"). Never raises
    for a notification that does not fit: it is recorded and acknowledged (a PSP retries a 5xx
    for days), with the reason."""
    connector = connector_selectors.connectors_by_ids(ids=[connector_id])[0]
    notice = event.dispute
    recorded = DisputeNotification.objects.filter(
        connector_id=connector_id, psp_event_id=event.psp_event_id[:255]
    )
    # a parked one is tried again when ops reprocess its inbound webhook (the payment may be
    # known by now); anything else was applied or ignored once already
    recorded.filter(result=R.PARKED).delete()
    if recorded.exists():
        return NotificationOutcome("ignored", "already recorded", event.psp_reference)
    attempt = intent_selectors.attempt_for_psp_reference(
        connector_id=connector_id, psp_reference=event.psp_reference
    )
    try:
        with transaction.atomic():
            if notice is None or not notice.psp_dispute_id or len(notice.psp_dispute_id) > 100:
                _record(connector=connector, event=event, result=R.PARKED, reason="no dispute id")
                return NotificationOutcome("ignored", "parked: no dispute id", event.psp_reference)
            if attempt is None or attempt.intent.amount_received <= 0:
                why = "no captured payment matches it"
                _record(connector=connector, event=event, result=R.PARKED, reason=why)
                logger.warning("dispute notification %s parked: %s", event.psp_event_id, why)
                return NotificationOutcome("ignored", f"parked for ops: {why}", event.psp_reference)
            if notice.informational:
                intent_services.intent_fraud_notice_record(intent_id=attempt.intent_id)
                _record(
                    connector=connector,
                    event=event,
                    result=R.INFORMATIONAL,
                    reason="fraud notification recorded on the payment",
                    intent_id=attempt.intent_id,
                )
                return NotificationOutcome(
                    "applied", "fraud notification recorded", attempt.intent.public_id
                )
            return _apply(connector=connector, event=event, attempt=attempt)
    except IntegrityError:
        # the same event recorded meanwhile by a concurrent worker
        if DisputeNotification.objects.filter(
            connector_id=connector_id, psp_event_id=event.psp_event_id[:255]
        ).exists():
            return NotificationOutcome("ignored", "already recorded", event.psp_reference)
        raise


def _count(dispute: Dispute, connector, *, opened: bool, closed: bool) -> None:
    """pp_disputes on /metrics (apps.core.metrics), once the change has committed."""
    psp, reason, won = connector.connector_type, dispute.reason, dispute.status == ST.WON
    if opened:
        transaction.on_commit(lambda: metrics.dispute_opened(psp=psp, reason=reason))
    if closed:
        transaction.on_commit(lambda: metrics.dispute_closed(psp=psp, won=won, reason=reason))


def _disputed_amount(amount, received: int) -> int:
    """What the PSP disputes, when it says so plausibly (a positive integer); else the payment's
    captured amount."""
    if isinstance(amount, int) and not isinstance(amount, bool) and 0 < amount <= 10**15:
        return amount
    return received


def _find_or_open(*, connector, event: WebhookEvent, attempt) -> tuple[Dispute, bool]:
    notice = event.dispute
    existing = Dispute.objects.filter(
        connector_id=connector.pk, psp_dispute_id=notice.psp_dispute_id
    ).first()
    if existing is not None:
        return _lock(existing.pk), False
    intent = attempt.intent
    stage = notice.stage or DisputeStage.CHARGEBACK
    status = notice.status
    if not status or (stage == DisputeStage.INQUIRY) != status.startswith("warning_"):
        status = ST.WARNING_NEEDS_RESPONSE if stage == DisputeStage.INQUIRY else ST.NEEDS_RESPONSE
    with transaction.atomic():  # a savepoint: a concurrent insert of the same dispute
        dispute = Dispute(
            merchant_id=intent.merchant_id,
            livemode=intent.livemode,
            intent=intent,
            attempt=attempt,
            connector=connector,
            amount=_disputed_amount(event.amount, intent.amount_received),
            currency=intent.currency,  # the payment's; the PSP's word stays in the timeline
            psp_dispute_id=notice.psp_dispute_id,
            psp_reference=event.psp_reference[:100],
        )
        dispute.move_stage(stage)
        dispute.move_status(status)
        if status in CLOSED_STATUSES:
            dispute.closed_at = timezone.now()
        dispute.save()
    return _lock(dispute.pk), True


def _apply(*, connector, event: WebhookEvent, attempt) -> NotificationOutcome:
    notice = event.dispute
    try:
        dispute, created = _find_or_open(connector=connector, event=event, attempt=attempt)
    except IntegrityError:
        dispute, created = _find_or_open(connector=connector, event=event, attempt=attempt)
    before = {"stage": dispute.stage, "status": dispute.status}
    if created:
        move = lifecycle.Move(dispute.stage, dispute.status, True, "opened")
    else:
        move = lifecycle.plan(
            stage=dispute.stage,
            status=dispute.status,
            new_stage=notice.stage,
            new_status=notice.status,
        )
    # the PSP's words and its dates follow every notification that is not stale
    stale = move.stale
    if not stale:
        dispute.psp_status = notice.raw_status[:40] or dispute.psp_status
        dispute.psp_event_code = notice.raw_event[:60]
        if notice.evidence_due_by:
            dispute.evidence_due_by = _dt(notice.evidence_due_by)
        if notice.network_reason_code or created:
            dispute.reason = notice.reason
            dispute.network_reason_code = notice.network_reason_code[:20]
        dispute.is_charge_refundable = notice.is_charge_refundable
    if move.changed and not created:
        _move(dispute, stage=move.stage, status=move.status)
        if move.stage != before["stage"]:
            # a new stage: the merchant may answer again; reminders start over
            dispute.reminded_72h_at = dispute.reminded_24h_at = None
            dispute.needs_attention = False
    money_events = _follow_funds(dispute, notice.funds, notice.fee_returned)
    dispute.save()
    _sync_intent_flag(dispute)
    events = []
    if created:
        events.append(("dispute.created", None))
    elif move.changed:
        events.append(("dispute.updated", before))
    events += [(name, None) for name in money_events]
    if move.changed and dispute.status in CLOSED_STATUSES:
        events.append(("dispute.closed", before))
    for name, previous in events:
        _emit(dispute, name, previous)
    _count(dispute, connector, opened=created, closed="dispute.closed" in dict(events))
    applied = move.changed or bool(money_events) or notice.funds == "withdrawn"
    result = R.APPLIED if applied or not stale else R.IGNORED
    reason = move.reason if not money_events else f"{move.reason}; {', '.join(money_events)}"
    _record(
        connector=connector,
        event=event,
        result=result,
        reason=reason,
        dispute=dispute,
        intent_id=dispute.intent_id,
    )
    changes = [
        {"object": dispute.public_id, "field": field, "from": before[field], "to": value}
        for field, value in (("stage", dispute.stage), ("status", dispute.status))
        if before[field] != value or created
    ]
    if result == R.IGNORED:
        return NotificationOutcome("ignored", f"out of order: {move.reason}", dispute.public_id)
    return NotificationOutcome("applied", reason, dispute.public_id, changes)


def dispute_notification_resolve(*, notification: DisputeNotification, actor: Actor) -> None:
    """Ops: a parked notification was handled by hand (matched or dismissed)."""
    updated = DisputeNotification.objects.filter(pk=notification.pk, result=R.PARKED).update(
        result=R.RESOLVED, reason=f"resolved by {getattr(actor, 'name', actor)}"[:300]
    )
    if not updated:
        raise ConflictError("This notification is not parked.", code="notification_not_parked")
    audit_record(
        actor=actor,
        action="dispute_notification.resolved",
        object_type="dispute_notification",
        object_id=str(notification.pk),
        merchant_id=notification.merchant_id,
        livemode=notification.livemode,
        changes={"result": ["parked", "resolved"]},
    )
