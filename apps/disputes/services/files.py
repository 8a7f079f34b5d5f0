"""Evidence files: PDF, JPEG or PNG by content, size-limited, in the file storage, per merchant."""

from __future__ import annotations

import hashlib

from django.core.files.base import ContentFile
from django.db import transaction

from apps.core.audit import Actor, audit_record
from apps.core.errors import InvalidRequestError
from apps.core.ids import new_public_id
from apps.disputes.models import EvidenceFile

FILE_MAX_BYTES = 700_000  # decoded; the API body (base64) stays under its 1 MiB limit
FILE_TYPES = {
    b"%PDF-": "application/pdf",
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
}


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
