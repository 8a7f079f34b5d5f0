"""Dispute writes: PSP notifications applied forward only, the money following the PSP, the
merchant's evidence and acceptance sent through the connector gateway, the deadlines.

Lock order: the dispute row, then its payment intent (apps.intents services), then the ledger.
Every change records its outbox event in the same transaction."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.connectors import gateway
from apps.connectors import selectors as connector_selectors
from apps.core.audit import Actor, audit_record
from apps.core.errors import ConflictError, InvalidRequestError, PlatformError
from apps.core.ids import new_public_id
from apps.disputes import lifecycle
from apps.disputes.models import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    Dispute,
    DisputeActivity,
    DisputeNotification,
    DisputeStage,
    DisputeStatus,
    EvidenceFile,
)
from apps.disputes.representations import (
    EVIDENCE_FILE_FIELDS,
    EVIDENCE_TEXT_FIELDS,
    dispute_representation,
)
from apps.events.notifications import NotificationOutcome
from apps.events.services import outbox_record_change
from apps.intents import selectors as intent_selectors
from apps.intents import services as intent_services
from apps.ledger import postings
from apps.ledger import services as ledger
from apps.psp_adapters.contract import (
    DisputeAcceptRequest,
    DisputeEvidenceRequest,
    EvidenceDocument,
    Outcome,
    WebhookEvent,
)

logger = logging.getLogger(__name__)
ST = DisputeStatus
R = DisputeNotification.Result

EVIDENCE_MAX_TEXT = 150_000  # characters over all text fields (Stripe's limit)
FILE_MAX_BYTES = 700_000  # decoded; the API body (base64) stays under its 1 MiB limit
FILE_TYPES = {
    b"%PDF-": "application/pdf",
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
}


class DisputeSubmissionError(PlatformError):
    """The PSP refused (or did not answer) the evidence or the acceptance."""

    http_status = 502
    error_type = "api_error"
    default_code = "dispute_psp_error"


# --------------------------------------------------------------------------- shared


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


# --------------------------------------------------------------------------- money


def _splits(splits: list[dict]) -> list[postings.Split]:
    return [postings.Split(seller_id=s["seller"], amount=s["amount"]) for s in splits]


def _ledger_common(dispute: Dispute) -> dict:
    return {
        "merchant_id": dispute.merchant_id,
        "livemode": dispute.livemode,
        "currency": dispute.currency,
        "metadata": {"dispute": dispute.public_id, "payment_intent": dispute.intent.public_id},
        "source_type": "dispute",
        "source_id": dispute.public_id,
    }


def _withdraw(dispute: Dispute) -> None:
    """The PSP took the disputed amount: from the merchant (and sellers) as far as the payment
    still holds it after refunds and other disputes, the rest as the platform's loss."""
    take = intent_services.intent_dispute_take(intent_id=dispute.intent_id, amount=dispute.amount)
    uncovered = dispute.amount - take.taken
    ledger.ledger_post(
        kind="chargeback",
        idempotency_key=f"{dispute.public_id}:withdrawal:{dispute.withdrawals_seen}",
        legs=postings.dispute_withdrawal_legs(
            connector=dispute.connector.public_id,
            taken=take.taken,
            uncovered=uncovered,
            captured_amount=take.amount_received,
            taken_before=take.taken_before,
            splits=_splits(take.splits),
        ),
        description=f"dispute {dispute.public_id}: funds withdrawn",
        **_ledger_common(dispute),
    )
    dispute.funds_withdrawn = True
    dispute.amount_taken = take.taken
    dispute.amount_uncovered = uncovered
    dispute.taken_before = take.taken_before


def _reinstate(dispute: Dispute) -> None:
    """Won: the PSP returns the amount (not its fee) to whoever bore it."""
    ledger.ledger_post(
        kind="chargeback_reversal",
        idempotency_key=f"{dispute.public_id}:reinstatement:{dispute.reinstatements_seen}",
        legs=postings.dispute_reinstatement_legs(
            connector=dispute.connector.public_id,
            taken=dispute.amount_taken,
            uncovered=dispute.amount_uncovered,
            captured_amount=dispute.intent.amount_received,
            taken_before=dispute.taken_before,
            splits=_splits(list(dispute.intent.splits or [])),
        ),
        description=f"dispute {dispute.public_id}: funds reinstated",
        **_ledger_common(dispute),
    )
    intent_services.intent_dispute_return(intent_id=dispute.intent_id, amount=dispute.amount_taken)
    dispute.funds_withdrawn = False
    dispute.amount_taken = 0
    dispute.amount_uncovered = 0
    dispute.taken_before = 0


def _charge_fee(dispute: Dispute) -> None:
    fee = connector_selectors.connector_dispute_fee(
        connector_id=dispute.connector_id, currency=dispute.currency
    )
    if fee <= 0:
        return
    ledger.ledger_post(
        kind="chargeback",
        idempotency_key=f"{dispute.public_id}:fee:{dispute.withdrawals_seen}",
        legs=postings.dispute_withdrawal_legs(
            connector=dispute.connector.public_id, taken=0, dispute_fee=fee
        ),
        description=f"dispute {dispute.public_id}: dispute fee",
        **_ledger_common(dispute),
    )
    dispute.fees_charged += fee


def _follow_funds(dispute: Dispute, funds: str) -> list[str]:
    """Counts what the PSP did to the money and brings the ledger to it: withdrawn while the
    PSP's withdrawals outnumber its reinstatements. So a reinstatement that arrives before
    its withdrawal nets to nothing, and a duplicate can never post twice."""
    events = []
    if funds == "withdrawn":
        dispute.withdrawals_seen += 1
        _charge_fee(dispute)
    elif funds == "reinstated":
        dispute.reinstatements_seen += 1
    should_hold = dispute.withdrawals_seen > dispute.reinstatements_seen
    if should_hold and not dispute.funds_withdrawn:
        _withdraw(dispute)
        events.append("dispute.funds_withdrawn")
    elif not should_hold and dispute.funds_withdrawn:
        _reinstate(dispute)
        events.append("dispute.funds_reinstated")
    return events


# --------------------------------------------------------------------------- notifications


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
            if notice is None or not notice.psp_dispute_id:
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
            amount=event.amount if event.amount and event.amount > 0 else intent.amount_received,
            currency=(event.currency or intent.currency).lower(),
            psp_dispute_id=notice.psp_dispute_id,
            psp_reference=event.psp_reference,
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
    money_events = _follow_funds(dispute, notice.funds)
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


# --------------------------------------------------------------------------- evidence


def _evidence_error(message: str, code: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, code=code, param=param)


def _check_answerable(dispute: Dispute, *, param: str) -> None:
    if dispute.status in CLOSED_STATUSES:
        raise ConflictError(
            f"This dispute is closed ({dispute.status}); it takes no more evidence.",
            code="dispute_closed",
            param=param,
        )
    if dispute.evidence_submitted_stage == dispute.stage:
        raise ConflictError(
            "Evidence for this dispute has already been submitted.",
            code="dispute_already_submitted",
            param=param,
        )


def _clean_evidence(dispute: Dispute, evidence: dict) -> dict:
    merged = dict(dispute.evidence)
    for name, value in evidence.items():
        param = f"evidence[{name}]"
        if name in EVIDENCE_FILE_FIELDS:
            if value in (None, ""):
                merged.pop(name, None)
                continue
            file = EvidenceFile.objects.filter(
                merchant_id=dispute.merchant_id,
                livemode=dispute.livemode,
                public_id=value,
                purpose="dispute_evidence",
            ).first()
            if file is None:
                raise _evidence_error(f"No such file: {value!r}.", "evidence_file_invalid", param)
            merged[name] = file.public_id
        elif name in EVIDENCE_TEXT_FIELDS:
            if value in (None, ""):
                merged.pop(name, None)
            else:
                merged[name] = value
        else:
            raise _evidence_error(f"Unknown evidence field {name!r}.", "parameter_unknown", param)
    total = sum(len(merged[name]) for name in EVIDENCE_TEXT_FIELDS if name in merged)
    if total > EVIDENCE_MAX_TEXT:
        raise _evidence_error(
            f"The evidence's text fields total {total} characters; at most {EVIDENCE_MAX_TEXT}.",
            "evidence_too_large",
            "evidence",
        )
    return merged


def _documents(dispute: Dispute) -> tuple[EvidenceDocument, ...]:
    documents = []
    for name in EVIDENCE_FILE_FIELDS:
        file_id = dispute.evidence.get(name)
        if not file_id:
            continue
        file = EvidenceFile.objects.get(merchant_id=dispute.merchant_id, public_id=file_id)
        with file.content.open("rb") as handle:
            content = handle.read()
        documents.append(
            EvidenceDocument(
                field=name, file_id=file.public_id, content_type=file.content_type, content=content
            )
        )
    return tuple(documents)


def dispute_update(
    *, dispute: Dispute, actor: Actor, evidence: dict | None = None, submit: bool = False
) -> Dispute:
    """Stages evidence (`submit` false) or sends it to the PSP once (`submit` true). Refusals
    change nothing."""
    with transaction.atomic():
        dispute = _lock(dispute.pk)
        _check_answerable(dispute, param="evidence" if evidence else "submit")
        staged = _clean_evidence(dispute, evidence or {})
        changed = staged != dispute.evidence
        dispute.evidence = staged
        if submit:
            # claimed before the PSP call: a second submission is refused meanwhile
            dispute.evidence_submitted_stage = dispute.stage
        dispute.save()
        if changed:
            _activity(dispute, "evidence_staged", actor, fields=sorted(evidence or {}))
            if not submit:
                _emit(dispute, "dispute.updated", {"evidence": {}})
    if not submit:
        return Dispute.objects.select_related("intent", "connector").get(pk=dispute.pk)
    result = gateway.dispute_submit_evidence(
        connector=dispute.connector,
        request=DisputeEvidenceRequest(
            psp_dispute_id=dispute.psp_dispute_id,
            psp_reference=dispute.psp_reference,
            idempotency_key=f"{dispute.public_id}-{dispute.stage}-evidence",
            evidence={k: v for k, v in dispute.evidence.items() if k in EVIDENCE_TEXT_FIELDS},
            documents=_documents(dispute),
            submit=True,
        ),
    )
    if result.outcome is not Outcome.APPROVED:
        with transaction.atomic():  # released (committed) before the error is raised
            dispute = _lock(dispute.pk)
            dispute.evidence_submitted_stage = ""
            dispute.save(update_fields=["evidence_submitted_stage", "updated_at"])
            _activity(dispute, "evidence_refused", actor, code=result.raw_code)
        raise DisputeSubmissionError(
            f"The PSP did not take the evidence ({result.raw_code or result.outcome}).",
            param="submit",
        )
    with transaction.atomic():
        dispute = _lock(dispute.pk)
        before = {
            "status": dispute.status,
            "evidence_details": {"submission_count": dispute.evidence_submission_count},
        }
        dispute.evidence_submitted_at = timezone.now()
        dispute.evidence_submission_count += 1
        under_review = (
            ST.WARNING_UNDER_REVIEW if dispute.stage == DisputeStage.INQUIRY else ST.UNDER_REVIEW
        )
        if (
            dispute.status not in CLOSED_STATUSES
            and lifecycle.plan(
                stage=dispute.stage, status=dispute.status, new_stage="", new_status=under_review
            ).changed
        ):
            dispute.move_status(under_review)
        dispute.needs_attention = False
        dispute.save()
        _activity(dispute, "evidence_submitted", actor, evidence=sorted(dispute.evidence))
        audit_record(
            actor=actor,
            action="dispute.evidence_submitted",
            object_type="dispute",
            object_id=dispute.public_id,
            merchant_id=dispute.merchant_id,
            livemode=dispute.livemode,
            changes={"status": [before["status"], dispute.status]},
        )
        _emit(dispute, "dispute.updated", before)
    return dispute


def dispute_close(*, dispute: Dispute, actor: Actor) -> Dispute:
    """The merchant accepts the loss: sent to the PSP, then `accepted`. The money already
    follows the PSP (a chargeback withdrew it); nothing more is posted here."""
    with transaction.atomic():
        dispute = _lock(dispute.pk)
        _check_answerable(dispute, param="dispute")
        dispute.evidence_submitted_stage = dispute.stage  # claimed: no submission meanwhile
        dispute.save(update_fields=["evidence_submitted_stage", "updated_at"])
    result = gateway.dispute_accept(
        connector=dispute.connector,
        request=DisputeAcceptRequest(
            psp_dispute_id=dispute.psp_dispute_id,
            psp_reference=dispute.psp_reference,
            idempotency_key=f"{dispute.public_id}-{dispute.stage}-accept",
        ),
    )
    if result.outcome is not Outcome.APPROVED:
        with transaction.atomic():  # released (committed) before the error is raised
            dispute = _lock(dispute.pk)
            dispute.evidence_submitted_stage = ""
            dispute.save(update_fields=["evidence_submitted_stage", "updated_at"])
            _activity(dispute, "acceptance_refused", actor, code=result.raw_code)
        raise DisputeSubmissionError(
            f"The PSP did not take the acceptance ({result.raw_code or result.outcome}).",
            param="dispute",
        )
    with transaction.atomic():
        dispute = _lock(dispute.pk)
        before = {"status": dispute.status}
        if dispute.status not in CLOSED_STATUSES:
            target = ST.WARNING_CLOSED if dispute.stage == DisputeStage.INQUIRY else ST.ACCEPTED
            _move(dispute, stage=dispute.stage, status=target)
        dispute.needs_attention = False
        dispute.save()
        _sync_intent_flag(dispute)
        _activity(dispute, "accepted", actor)
        audit_record(
            actor=actor,
            action="dispute.accepted",
            object_type="dispute",
            object_id=dispute.public_id,
            merchant_id=dispute.merchant_id,
            livemode=dispute.livemode,
            changes={"status": [before["status"], dispute.status]},
        )
        _emit(dispute, "dispute.closed", before)
    return dispute


# --------------------------------------------------------------------------- files


def _sniff(content: bytes) -> str | None:
    for magic, content_type in FILE_TYPES.items():
        if content.startswith(magic):
            return content_type
    return None


def evidence_file_create(
    *, merchant, livemode: bool, purpose: str, filename: str, content: bytes, actor: Actor
) -> EvidenceFile:
    """An evidence document: PDF, JPEG or PNG by its content (not its name), at most
    FILE_MAX_BYTES, in the file storage, scoped to the merchant."""
    if purpose != "dispute_evidence":
        raise InvalidRequestError(
            "purpose must be 'dispute_evidence'.", code="parameter_invalid", param="purpose"
        )
    if not content:
        raise InvalidRequestError("The file is empty.", code="file_empty", param="file")
    if len(content) > FILE_MAX_BYTES:
        raise InvalidRequestError(
            f"The file is larger than {FILE_MAX_BYTES} bytes.", code="file_too_large", param="file"
        )
    content_type = _sniff(content)
    if content_type is None:
        raise InvalidRequestError(
            "The file is not a PDF, JPEG or PNG.", code="file_type_invalid", param="file"
        )
    with transaction.atomic():
        file = EvidenceFile(
            merchant=merchant,
            livemode=livemode,
            purpose=purpose,
            filename=(filename or "")[:255],
            content_type=content_type,
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
        )
        file.public_id = new_public_id("file")  # the storage path needs it before saving
        file.content.save(file.public_id, ContentFile(content), save=False)
        file.save()
        audit_record(
            actor=actor,
            action="file.created",
            object_type="file",
            object_id=file.public_id,
            merchant_id=merchant.id,
            livemode=livemode,
            changes={"size": [None, file.size], "type": [None, content_type]},
        )
    return file


# --------------------------------------------------------------------------- deadlines


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
