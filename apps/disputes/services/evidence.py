"""The merchant's answer: evidence staged, submitted once to the PSP through the connector
gateway, or the dispute accepted."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from apps.connectors import gateway
from apps.core.audit import Actor, audit_record
from apps.core.errors import ConflictError, InvalidRequestError, PlatformError
from apps.disputes import lifecycle
from apps.disputes.models import (
    CLOSED_STATUSES,
    Dispute,
    DisputeStage,
    EvidenceFile,
)
from apps.disputes.representations import (
    EVIDENCE_FILE_FIELDS,
    EVIDENCE_TEXT_FIELDS,
)
from apps.disputes.services.common import (
    ST,
    _activity,
    _emit,
    _lock,
    _move,
    _sync_intent_flag,
)
from apps.psp_adapters.contract import (
    DisputeAcceptRequest,
    DisputeEvidenceRequest,
    EvidenceDocument,
    Outcome,
)

EVIDENCE_MAX_TEXT = 150_000  # characters over all text fields (Stripe's limit)


class DisputeSubmissionError(PlatformError):
    """The PSP refused (or did not answer) the evidence or the acceptance."""

    http_status = 502
    error_type = "api_error"
    default_code = "dispute_psp_error"


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
