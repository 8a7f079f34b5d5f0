"""Dispute writes: PSP notifications applied forward only, the money following the PSP, the
merchant's evidence and acceptance sent through the connector gateway, the deadlines.

Lock order: the dispute row, then its payment intent (apps.intents services), then the ledger.
Every change records its outbox event in the same transaction. Split along its seams:
`notifications`, `money`, `evidence`, `files`, `deadlines`, and `common`."""

from apps.disputes.services.deadlines import disputes_check_deadlines
from apps.disputes.services.evidence import (
    EVIDENCE_MAX_TEXT,
    DisputeSubmissionError,
    dispute_close,
    dispute_update,
)
from apps.disputes.services.files import FILE_MAX_BYTES, evidence_file_create
from apps.disputes.services.notifications import (
    dispute_apply_notification,
    dispute_notification_resolve,
)

__all__ = [
    "EVIDENCE_MAX_TEXT",
    "FILE_MAX_BYTES",
    "DisputeSubmissionError",
    "dispute_apply_notification",
    "dispute_close",
    "dispute_notification_resolve",
    "dispute_update",
    "disputes_check_deadlines",
    "evidence_file_create",
]
