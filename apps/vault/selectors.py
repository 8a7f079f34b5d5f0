"""Reads of tokenized cards, always scoped to the caller's merchant and mode."""

from __future__ import annotations

import re

from apps.core.errors import NotFoundError
from apps.vault.models import PaymentMethod

_PUBLIC_ID = re.compile(r"^pm_[A-Za-z0-9]{1,40}$")


def _not_found(public_id: str, *, param: str) -> NotFoundError:
    # echo the id only when it looks like one: a client that pastes a card number here must not
    # get it back in a response or a log line
    shown = f": '{public_id}'" if _PUBLIC_ID.match(public_id or "") else ""
    return NotFoundError(f"No such PaymentMethod{shown}.", code="resource_missing", param=param)


def _payment_method_get(*, merchant_id: int, livemode: bool, public_id: str, param: str):
    try:
        return PaymentMethod.objects.get(
            merchant_id=merchant_id, livemode=livemode, public_id=public_id
        )
    except PaymentMethod.DoesNotExist:
        raise _not_found(public_id, param=param) from None


def payment_method_get(*, merchant_id: int, livemode: bool, public_id: str) -> PaymentMethod:
    """For `GET /v1/payment_methods/{id}`."""
    return _payment_method_get(
        merchant_id=merchant_id, livemode=livemode, public_id=public_id, param="id"
    )


def payment_method_get_for_charge(
    *, merchant_id: int, livemode: bool, public_id: str
) -> PaymentMethod:
    """The payment method a payment intent names, or `resource_missing` (param
    `payment_method`) when it is not this merchant's in this mode."""
    return _payment_method_get(
        merchant_id=merchant_id, livemode=livemode, public_id=public_id, param="payment_method"
    )


def card_routing_facts(payment_method: PaymentMethod) -> dict:
    """What routing rules may look at: never more than brand, funding, BIN, country and last4."""
    return {
        "brand": payment_method.brand,
        "funding": payment_method.funding,
        "bin": payment_method.bin,
        "issuer_country": payment_method.issuer_country,
        "last4": payment_method.last4,
    }
