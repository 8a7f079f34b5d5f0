"""Direct postings: opening accounts and posting a balanced journal of a postable kind
(holds, their resolutions and reversals have their own services)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, transaction

from apps.core.errors import InvalidRequestError
from apps.core.money import normalize_currency
from apps.ledger import chart
from apps.ledger.chart import Leg
from apps.ledger.models import JournalTransaction, LedgerAccount, LedgerEntry
from apps.ledger.services._shared import (
    _check_key,
    _check_legs,
    _check_metadata,
    _check_scope,
    _check_text,
    _request_hash,
)
from apps.ledger.services.engine import _CREATE_ACCOUNTS, _create_params, _execute, _Journal

Kind = JournalTransaction.Kind
Phase = LedgerEntry.Phase

# kinds that ledger_post may write; holds, resolutions and reversals have their own services
POSTABLE_KINDS = frozenset(Kind.values) - {
    Kind.AUTHORIZATION_HOLD,
    Kind.VOID,
    Kind.EXPIRY,
    Kind.REVERSAL,
    Kind.PAYOUT_FAILURE,
}


def ledger_accounts_open(
    *, merchant_id: int, livemode: bool, currency: str, codes: Sequence[str]
) -> dict[str, LedgerAccount]:
    """Get-or-create accounts (race-safe): {code: account}."""
    _check_scope(merchant_id, livemode)
    currency = normalize_currency(currency)
    for code in codes:
        chart.account_type(code)
    spec = _Journal(
        kind="",
        merchant_id=merchant_id,
        livemode=livemode,
        currency=currency,
        idempotency_key="",
        request_hash="",
        metadata={},
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_CREATE_ACCOUNTS, _create_params(spec, codes))
    accounts = LedgerAccount.objects.filter(
        merchant_id=merchant_id, livemode=livemode, currency=currency, code__in=list(codes)
    )
    return {a.code: a for a in accounts}


def ledger_post(
    *,
    merchant_id: int,
    livemode: bool,
    currency: str,
    kind: str,
    idempotency_key: str,
    legs: Sequence[Leg],
    metadata: dict | None = None,
    source_type: str = "",
    source_id: str = "",
    description: str = "",
) -> JournalTransaction:
    """Posts a balanced journal. Replaying the same key and payload returns the original."""
    _check_scope(merchant_id, livemode)
    currency = normalize_currency(currency)
    if kind not in POSTABLE_KINDS:
        raise InvalidRequestError(
            f"Kind {kind!r} cannot be posted directly.", code="kind_invalid", param="kind"
        )
    _check_key(idempotency_key)
    metadata = _check_metadata(metadata)
    _check_text(source_type, param="source_type", max_length=40)
    _check_text(source_id, param="source_id", max_length=80)
    _check_text(description, param="description", max_length=255)
    checked = _check_legs(legs, currency)
    request_hash = _request_hash(
        {
            "op": "post",
            "kind": kind,
            "merchant_id": merchant_id,
            "livemode": livemode,
            "currency": currency,
            "legs": checked,
            "metadata": metadata,
            "source": [source_type, source_id],
            "description": description,
        }
    )
    return _execute(
        _Journal(
            kind=kind,
            merchant_id=merchant_id,
            livemode=livemode,
            currency=currency,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            metadata=metadata,
            entries=[(code, amount, Phase.POSTED) for code, amount in checked],
            source_type=source_type,
            source_id=source_id,
            description=description,
        )
    )
