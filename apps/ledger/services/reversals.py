"""Reversals: the exact negation of a posted journal, once (a failed payout is one, of kind
`payout_failure`). Holds are voided, not reversed."""

from __future__ import annotations

from apps.core.errors import ConflictError, InvalidRequestError
from apps.ledger.models import JournalTransaction, LedgerEntry
from apps.ledger.services._shared import (
    _check_key,
    _check_metadata,
    _check_text,
    _load_journal,
    _request_hash,
)
from apps.ledger.services.engine import _execute, _Journal, _replay

Kind = JournalTransaction.Kind
Phase = LedgerEntry.Phase


def ledger_reverse(
    *,
    transaction: JournalTransaction | str,
    idempotency_key: str,
    reason: str,
    kind: str = Kind.REVERSAL,
    metadata: dict | None = None,
) -> JournalTransaction:
    """Posts the exact negation of a journal, once. Holds are voided, not reversed; a reversal
    is not reversed again (post the movement anew instead). A failed payout is
    `kind="payout_failure"`: the payout reversed back to the available balance."""
    original = _load_journal(transaction, param="transaction")
    if kind not in JournalTransaction.REVERSAL_KINDS:
        raise InvalidRequestError(f"{kind!r} is not a reversal kind.", code="kind_invalid")
    _check_key(idempotency_key)
    metadata = _check_metadata(metadata)
    _check_text(reason, param="reason", max_length=255)
    spec = _Journal(
        kind=kind,
        merchant_id=original.merchant_id,
        livemode=original.livemode,
        currency=original.currency,
        idempotency_key=idempotency_key,
        request_hash=_request_hash(
            {"op": kind, "reverses": original.public_id, "reason": reason, "metadata": metadata}
        ),
        metadata=metadata,
        source_type=original.source_type,
        source_id=original.source_id,
        description=reason,
        reverses_id=original.pk,
    )
    if JournalTransaction.objects.filter(idempotency_key=idempotency_key).exists():
        return _replay(spec)
    if original.kind in JournalTransaction.REVERSAL_KINDS:
        raise ConflictError("A reversal cannot be reversed.", code="reversal_not_allowed")
    entries = list(
        LedgerEntry.objects.filter(transaction_id=original.pk)
        .order_by("id")
        .values_list("account__code", "amount", "phase")
    )
    if any(phase != Phase.POSTED for _, _, phase in entries):
        raise ConflictError(
            "Holds and their resolutions are voided, not reversed.", code="reversal_not_allowed"
        )
    if JournalTransaction.objects.filter(reverses_id=original.pk).exists():
        raise ConflictError(
            "This transaction is already reversed.", code="transaction_already_reversed"
        )
    spec.entries = [(code, -amount, Phase.POSTED) for code, amount, _ in entries]
    return _execute(spec)
