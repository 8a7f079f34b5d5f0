"""Two-phase movements: a pending hold (an authorization), resolved exactly once by a capture
(at most the held amount), a void or an expiry."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.utils import timezone

from apps.core.errors import ConflictError, InvalidRequestError
from apps.core.money import normalize_currency
from apps.ledger.chart import Leg
from apps.ledger.models import JournalTransaction, LedgerEntry
from apps.ledger.services._shared import (
    _check_amount,
    _check_key,
    _check_legs,
    _check_metadata,
    _check_scope,
    _check_text,
    _load_journal,
    _request_hash,
)
from apps.ledger.services.engine import _execute, _Journal, _replay

Kind = JournalTransaction.Kind
Phase = LedgerEntry.Phase


def ledger_hold(
    *,
    merchant_id: int,
    livemode: bool,
    currency: str,
    idempotency_key: str,
    legs: Sequence[Leg],
    expires_at: datetime,
    metadata: dict | None = None,
    source_type: str = "",
    source_id: str = "",
    description: str = "",
) -> JournalTransaction:
    """Opens a pending hold (an authorization): the legs move pending debits/credits only,
    until a capture, void or expiry resolves the hold exactly once."""
    _check_scope(merchant_id, livemode)
    currency = normalize_currency(currency)
    _check_key(idempotency_key)
    metadata = _check_metadata(metadata)
    _check_text(source_type, param="source_type", max_length=40)
    _check_text(source_id, param="source_id", max_length=80)
    _check_text(description, param="description", max_length=255)
    if not isinstance(expires_at, datetime) or timezone.is_naive(expires_at):
        raise InvalidRequestError(
            "expires_at must be a timezone-aware datetime.",
            code="parameter_invalid",
            param="expires_at",
        )
    checked = _check_legs(legs, currency)
    request_hash = _request_hash(
        {
            "op": "hold",
            "merchant_id": merchant_id,
            "livemode": livemode,
            "currency": currency,
            "legs": checked,
            "expires_at": expires_at.isoformat(),
            "metadata": metadata,
            "source": [source_type, source_id],
            "description": description,
        }
    )
    return _execute(
        _Journal(
            kind=Kind.AUTHORIZATION_HOLD,
            merchant_id=merchant_id,
            livemode=livemode,
            currency=currency,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            metadata=metadata,
            entries=[(code, amount, Phase.HOLD) for code, amount in checked],
            source_type=source_type,
            source_id=source_id,
            description=description,
            expires_at=expires_at,
        )
    )


def _hold_entries(hold: JournalTransaction) -> list[tuple[str, int]]:
    return list(
        LedgerEntry.objects.filter(transaction_id=hold.pk, phase=Phase.HOLD)
        .order_by("id")
        .values_list("account__code", "amount")
    )


def _resolve_hold(
    *,
    hold: JournalTransaction | str,
    kind: str,
    idempotency_key: str,
    amount: int | None = None,
    legs: Sequence[Leg] = (),
    metadata: dict | None,
    source_type: str,
    source_id: str,
    description: str,
) -> JournalTransaction:
    hold = _load_journal(hold, param="hold")
    if hold.kind != Kind.AUTHORIZATION_HOLD:
        raise InvalidRequestError(
            f"{hold.public_id} is a {hold.kind}, not a hold.", code="not_a_hold", param="hold"
        )
    _check_key(idempotency_key)
    metadata = _check_metadata(metadata)
    _check_text(source_type, param="source_type", max_length=40)
    _check_text(source_id, param="source_id", max_length=80)
    _check_text(description, param="description", max_length=255)
    checked: list[tuple[str, int]] = []
    if kind == Kind.CAPTURE:
        _check_amount(amount, positive=True)
        checked = _check_legs(legs, hold.currency)
        if sum(a for _, a in checked if a > 0) != amount:
            raise InvalidRequestError(
                f"The capture legs must move exactly the captured amount {amount}.",
                code="legs_amount_mismatch",
                param="legs",
            )
    request_hash = _request_hash(
        {
            "op": kind,
            "hold": hold.public_id,
            "amount": amount,
            "legs": checked,
            "metadata": metadata,
            "source": [source_type, source_id],
            "description": description,
        }
    )
    spec = _Journal(
        kind=kind,
        merchant_id=hold.merchant_id,
        livemode=hold.livemode,
        currency=hold.currency,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        metadata=metadata,
        source_type=source_type,
        source_id=source_id,
        description=description,
        resolves_id=hold.pk,
    )
    # a replay must return the original even though the hold is resolved by now
    if JournalTransaction.objects.filter(idempotency_key=idempotency_key).exists():
        return _replay(spec)

    held_entries = _hold_entries(hold)
    held = sum(a for _, a in held_entries if a > 0)
    if kind == Kind.CAPTURE and amount > held:
        raise InvalidRequestError(
            f"Cannot capture {amount}: the hold is for {held}.",
            code="capture_exceeds_hold",
            param="amount",
        )
    resolution = JournalTransaction.objects.filter(resolves_id=hold.pk).first()
    if resolution is not None:
        raise ConflictError(
            f"This hold is already resolved by a {resolution.kind} ({resolution.public_id}).",
            code="hold_already_resolved",
        )
    now = timezone.now()
    if kind == Kind.CAPTURE and now >= hold.expires_at:
        raise ConflictError("This hold has expired and cannot be captured.", code="hold_expired")
    if kind == Kind.EXPIRY and now < hold.expires_at:
        raise ConflictError(
            f"This hold expires at {hold.expires_at.isoformat()}.", code="hold_not_expired"
        )
    spec.created_at = now
    spec.entries = [(code, -a, Phase.RELEASE) for code, a in held_entries] + [
        (code, a, Phase.POSTED) for code, a in checked
    ]
    return _execute(spec)


def ledger_capture_hold(
    *,
    hold: JournalTransaction | str,
    amount: int,
    legs: Sequence[Leg],
    idempotency_key: str,
    metadata: dict | None = None,
    source_type: str = "",
    source_id: str = "",
    description: str = "",
) -> JournalTransaction:
    """Captures at most the held amount: releases the whole hold and posts `legs`, whose debits
    must total `amount`. The uncaptured rest is simply released (one capture per hold)."""
    return _resolve_hold(
        hold=hold,
        kind=Kind.CAPTURE,
        idempotency_key=idempotency_key,
        amount=amount,
        legs=legs,
        metadata=metadata,
        source_type=source_type,
        source_id=source_id,
        description=description,
    )


def ledger_void_hold(
    *,
    hold: JournalTransaction | str,
    idempotency_key: str,
    reason: str = "",
    metadata: dict | None = None,
    source_type: str = "",
    source_id: str = "",
) -> JournalTransaction:
    """Releases the whole hold without posting anything (authorization canceled)."""
    return _resolve_hold(
        hold=hold,
        kind=Kind.VOID,
        idempotency_key=idempotency_key,
        metadata=metadata,
        source_type=source_type,
        source_id=source_id,
        description=reason,
    )


def ledger_expire_hold(
    *,
    hold: JournalTransaction | str,
    idempotency_key: str | None = None,
    metadata: dict | None = None,
) -> JournalTransaction:
    """Releases a hold whose `expires_at` has passed. The key defaults to one per hold."""
    hold = _load_journal(hold, param="hold")
    return _resolve_hold(
        hold=hold,
        kind=Kind.EXPIRY,
        idempotency_key=idempotency_key or f"{hold.public_id}:expiry",
        metadata=metadata,
        source_type=hold.source_type,
        source_id=hold.source_id,
        description="authorization expired",
    )
