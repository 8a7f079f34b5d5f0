"""Private helpers the ledger's service modules share: the input checks (a clear error before
anything is locked), the request hash that tells a replay from a reused key, and the lookup of
a journal by instance or public id."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from apps.core.errors import InvalidRequestError, NotFoundError
from apps.ledger import chart
from apps.ledger.chart import Leg
from apps.ledger.models import JournalTransaction

# Far below 2**63 so that sums over many entries cannot overflow a bigint.
MAX_AMOUNT = 10**15


def _check_amount(amount, *, param: str = "amount", positive: bool = False) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidRequestError(
            "Amounts are integers in the currency's minor unit.", code="amount_invalid", param=param
        )
    if amount == 0:
        raise InvalidRequestError("Amount must not be zero.", code="amount_zero", param=param)
    if positive and amount < 0:
        raise InvalidRequestError(
            "Amount must be greater than zero.", code="amount_invalid", param=param
        )
    if abs(amount) > MAX_AMOUNT:
        raise InvalidRequestError(
            f"Amount must be at most {MAX_AMOUNT}.", code="amount_too_large", param=param
        )
    return amount


def _check_scope(merchant_id, livemode) -> None:
    if isinstance(merchant_id, bool) or not isinstance(merchant_id, int) or merchant_id <= 0:
        raise InvalidRequestError(
            "merchant_id must be a positive integer.", code="parameter_invalid", param="merchant_id"
        )
    if not isinstance(livemode, bool):
        raise InvalidRequestError(
            "livemode must be a boolean.", code="parameter_invalid", param="livemode"
        )


def _check_key(idempotency_key) -> str:
    if not isinstance(idempotency_key, str) or not idempotency_key.strip():
        raise InvalidRequestError(
            "An idempotency key is required.",
            code="idempotency_key_invalid",
            param="idempotency_key",
        )
    if len(idempotency_key) > 255:
        raise InvalidRequestError(
            "The idempotency key must be at most 255 characters.",
            code="idempotency_key_too_long",
            param="idempotency_key",
        )
    return idempotency_key


def _check_text(value, *, param: str, max_length: int) -> str:
    if not isinstance(value, str) or len(value) > max_length:
        raise InvalidRequestError(
            f"{param} must be a string of at most {max_length} characters.",
            code="parameter_invalid",
            param=param,
        )
    return value


def _check_metadata(metadata) -> dict:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise InvalidRequestError(
            "metadata must be an object with string keys.",
            code="parameter_invalid",
            param="metadata",
        )
    try:
        json.dumps(metadata)
    except (TypeError, ValueError):
        raise InvalidRequestError(
            "metadata must hold JSON values only.", code="parameter_invalid", param="metadata"
        )
    return metadata


def _check_legs(legs: Sequence[Leg], currency: str) -> list[tuple[str, int]]:
    if not isinstance(legs, list | tuple) or not legs:
        raise InvalidRequestError(
            "A journal needs at least one debit and one credit leg.",
            code="legs_missing",
            param="legs",
        )
    checked = []
    for index, leg in enumerate(legs):
        if not isinstance(leg, Leg):
            raise InvalidRequestError(
                "Each leg must be a ledger Leg.", code="leg_invalid", param=f"legs[{index}]"
            )
        chart.account_type(leg.account)
        _check_amount(leg.amount, param=f"legs[{index}].amount")
        if leg.currency is not None and str(leg.currency).lower() != currency:
            raise InvalidRequestError(
                f"Leg currency {leg.currency!r} does not match the account currency {currency!r}.",
                code="currency_mismatch",
                param=f"legs[{index}].currency",
            )
        checked.append((leg.account, leg.amount))
    debits = sum(a for _, a in checked if a > 0)
    credits = -sum(a for _, a in checked if a < 0)
    if debits != credits:
        raise InvalidRequestError(
            f"Legs do not balance: debits {debits} != credits {credits}.",
            code="journal_unbalanced",
            param="legs",
        )
    return checked


def _request_hash(payload: dict) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _load_journal(ref: JournalTransaction | str, *, param: str) -> JournalTransaction:
    if isinstance(ref, JournalTransaction):
        return ref
    found = None
    if isinstance(ref, str):
        found = JournalTransaction.objects.filter(public_id=ref).first()
    if found is None:
        raise NotFoundError(f"No such ledger transaction: {ref!r}.", param=param)
    return found
