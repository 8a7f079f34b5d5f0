"""The public shape of a dispute (Stripe's Dispute object, plus our stage and the PSP's own
words): used by the API and by the outbox, so an event carries what GET would return."""

from __future__ import annotations

from apps.disputes.models import Dispute, EvidenceFile

EVIDENCE_TEXT_FIELDS = (
    "access_activity_log",
    "billing_address",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_tracking_number",
    "uncategorized_text",
)
EVIDENCE_FILE_FIELDS = (
    "cancellation_policy",
    "customer_communication",
    "customer_signature",
    "duplicate_charge_documentation",
    "receipt",
    "refund_policy",
    "service_documentation",
    "shipping_documentation",
    "uncategorized_file",
)
EVIDENCE_FIELDS = EVIDENCE_TEXT_FIELDS + EVIDENCE_FILE_FIELDS


def _ts(value) -> int | None:
    return int(value.timestamp()) if value else None


def _reminder(dispute: Dispute) -> str | None:
    if dispute.reminded_24h_at:
        return "24h"
    if dispute.reminded_72h_at:
        return "72h"
    return None


def dispute_representation(dispute: Dispute) -> dict:
    return {
        "id": dispute.public_id,
        "object": "dispute",
        "livemode": dispute.livemode,
        "amount": dispute.amount,
        "currency": dispute.currency,
        "payment_intent": dispute.intent.public_id,
        "connector": dispute.connector.public_id,
        "stage": dispute.stage,
        "status": dispute.status,
        "reason": dispute.reason,
        "network_reason_code": dispute.network_reason_code or None,
        "is_charge_refundable": dispute.is_charge_refundable,
        "psp": {
            "dispute_id": dispute.psp_dispute_id,
            "status": dispute.psp_status or None,
            "event_code": dispute.psp_event_code or None,
        },
        "evidence": {name: dispute.evidence.get(name) for name in EVIDENCE_FIELDS},
        "evidence_details": {
            "due_by": _ts(dispute.evidence_due_by),
            "has_evidence": bool(dispute.evidence),
            "submission_count": dispute.evidence_submission_count,
            "submitted_at": _ts(dispute.evidence_submitted_at),
            "reminder": _reminder(dispute),
        },
        "balance": {
            "funds_withdrawn": dispute.funds_withdrawn,
            "amount_withdrawn": dispute.amount_taken + dispute.amount_uncovered
            if dispute.funds_withdrawn
            else 0,
            "fees": dispute.fees_charged - dispute.fees_returned,
        },
        "closed_at": _ts(dispute.closed_at),
        "created": _ts(dispute.created_at),
    }


def file_representation(file: EvidenceFile) -> dict:
    return {
        "id": file.public_id,
        "object": "file",
        "livemode": file.livemode,
        "purpose": file.purpose,
        "filename": file.filename or None,
        "type": {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}[
            file.content_type
        ],
        "size": file.size,
        "created": _ts(file.created_at),
    }
