from __future__ import annotations

import json
from datetime import date

from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.core.crypto import Ciphertext, decrypt
from apps.core.errors import AuthenticationError, InvalidRequestError, NotFoundError
from apps.merchants import key_cache
from apps.merchants.domain import BANK_AAD_PREFIX, BankAccountDetails, hash_api_key
from apps.merchants.models import ApiKey, Merchant, Seller

_KEY_PREFIXES = ("sk_test_", "sk_live_", "pk_test_", "pk_live_")


def api_key_authenticate(raw_key: str) -> ApiKey:
    """Resolves a presented key or raises the precise 401. The key row comes from this
    process's short-lived copy when it has one (apps.merchants.key_cache); revocation, expiry
    and live mode are checked on every request either way."""
    if not raw_key.startswith(_KEY_PREFIXES) or len(raw_key) < 20 or not raw_key.isascii():
        raise AuthenticationError(
            "Malformed API key: expected 'Bearer sk_test_…' (or sk_live_, pk_test_, pk_live_).",
            code="api_key_malformed",
        )
    key_hash = hash_api_key(raw_key)
    key, token = key_cache.lookup(key_hash)
    if key is None:
        try:
            key = ApiKey.objects.select_related("merchant").get(key_hash=key_hash)
        except ApiKey.DoesNotExist:
            raise AuthenticationError("Invalid API key provided.", code="api_key_invalid") from None
        key_cache.store(key_hash, key, token)
    presented_live = raw_key[3:7] == "live"
    presented_secret = raw_key.startswith("sk_")
    if presented_live != key.livemode or presented_secret != key.is_secret:
        raise AuthenticationError("API key mode does not match.", code="api_key_wrong_mode")
    if key.revoked_at is not None:
        raise AuthenticationError("This API key has been revoked.", code="api_key_revoked")
    if key.expires_at is not None and key.expires_at <= timezone.now():
        raise AuthenticationError(
            "This API key has expired after being rolled; use its replacement.",
            code="api_key_expired",
        )
    if key.livemode and not key.merchant.live_enabled:
        raise AuthenticationError(
            "Live mode is not enabled for this account yet; use a test key.",
            code="api_key_wrong_mode",
        )
    return key


def api_key_list(*, merchant: Merchant, livemode: bool):
    return ApiKey.objects.filter(merchant=merchant, livemode=livemode)


def api_key_get(*, merchant: Merchant, livemode: bool, public_id: str) -> ApiKey:
    try:
        return api_key_list(merchant=merchant, livemode=livemode).get(public_id=public_id)
    except ApiKey.DoesNotExist:
        raise NotFoundError(f"No such api key: {public_id!r}.", param="id") from None


# --------------------------------------------------------------------------- sellers


def seller_list(*, merchant_id: int, livemode: bool) -> QuerySet[Seller]:
    return Seller.objects.filter(merchant_id=merchant_id, livemode=livemode)


def seller_get(*, merchant_id: int, livemode: bool, public_id: str) -> Seller:
    """The caller's seller, or a 404 (another merchant's seller does not exist for them)."""
    try:
        return seller_list(merchant_id=merchant_id, livemode=livemode).get(public_id=public_id)
    except Seller.DoesNotExist:
        raise NotFoundError(f"No such seller: {public_id!r}.", param="id") from None


def seller_get_referenced(
    *, merchant_id: int, livemode: bool, public_id: str, param: str
) -> Seller:
    """A seller named inside a request body (a split, a payout): 400 with `param` when the id
    is malformed, unknown, in the other mode or another merchant's. The last two are not told
    apart from unknown ids, so one merchant cannot probe another's sellers."""
    if not isinstance(public_id, str) or not public_id.startswith("sel_") or len(public_id) > 40:
        raise InvalidRequestError(
            "A seller id looks like 'sel_…'.", code="seller_invalid", param=param
        )
    seller = Seller.objects.filter(
        merchant_id=merchant_id, livemode=livemode, public_id=public_id
    ).first()
    if seller is None:
        raise InvalidRequestError(
            f"No such seller on this account: {public_id!r}.",
            code="seller_not_found",
            param=param,
        )
    return seller


def seller_get_for_split(
    *, merchant_id: int, livemode: bool, public_id: str, param: str = "splits"
) -> Seller:
    """For `splits` on a payment intent: pass `param="splits[0][seller]"` to name the entry.
    The ledger id of the seller (`postings.Split(seller_id=…)`) is `seller.ledger_id`."""
    return seller_get_referenced(
        merchant_id=merchant_id, livemode=livemode, public_id=public_id, param=param
    )


def seller_bank_account(*, seller: Seller) -> BankAccountDetails:
    """Decrypts the payout bank account, for the payout provider call only."""
    blob = Ciphertext(key_id=seller.bank_account_key_id, blob=bytes(seller.bank_account_encrypted))
    numbers = json.loads(
        decrypt(blob, associated_data=(BANK_AAD_PREFIX + seller.public_id).encode())
    )
    return BankAccountDetails(
        country=seller.bank_country,
        currency=seller.bank_currency,
        account_holder_name=seller.bank_account_holder_name,
        account_number=numbers["account_number"],
        routing_number=numbers["routing_number"],
    )


def sellers_due_for_payout(*, on: date) -> QuerySet[Seller]:
    """Sellers whose automatic payout falls on this (UTC) day: daily ones, and weekly ones
    anchored on its weekday. Manual sellers are paid out only on request."""
    weekday = Seller.Weekday.values[on.weekday()]
    return Seller.objects.filter(
        Q(payout_interval=Seller.PayoutInterval.DAILY)
        | Q(payout_interval=Seller.PayoutInterval.WEEKLY, payout_weekly_anchor=weekday)
    ).order_by("id")
