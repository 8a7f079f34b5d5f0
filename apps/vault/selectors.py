"""Reads of tokenized cards, always scoped to the caller's merchant and mode."""

from __future__ import annotations

import functools
import re

from django.db import connection

from apps.core.errors import NotFoundError
from apps.vault.models import PaymentMethod

_PUBLIC_ID = re.compile(r"^pm_[A-Za-z0-9]{1,40}$")


def _not_found(public_id: str, *, param: str) -> NotFoundError:
    # echo the id only when it looks like one: a client that pastes a card number here must not
    # get it back in a response or a log line
    shown = f": '{public_id}'" if _PUBLIC_ID.match(public_id or "") else ""
    return NotFoundError(f"No such PaymentMethod{shown}.", code="resource_missing", param=param)


@functools.cache
def _select_by_public_id() -> tuple[str, tuple[str, ...]]:
    """The read `PaymentMethod.objects.get(merchant, livemode, public_id)` makes, written once
    per process: the checkout reads a card per payment, and compiling the ORM query for it cost
    more CPU than the query. Every concrete field, as the ORM would load it."""
    fields = PaymentMethod._meta.concrete_fields
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    sql = (
        f"SELECT {columns} FROM {quote(PaymentMethod._meta.db_table)} "
        "WHERE merchant_id = %s AND livemode = %s AND public_id = %s"
    )
    return sql, tuple(f.attname for f in fields)


def _payment_method_get(*, merchant_id: int, livemode: bool, public_id: str, param: str):
    sql, attnames = _select_by_public_id()
    with connection.cursor() as cursor:
        cursor.execute(sql, (merchant_id, livemode, str(public_id)))
        row = cursor.fetchone()  # public_id is unique
    if row is None:
        raise _not_found(public_id, param=param)
    return PaymentMethod.from_db(connection.alias, attnames, row)


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
