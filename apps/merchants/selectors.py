from __future__ import annotations

from django.utils import timezone

from apps.core.errors import AuthenticationError, NotFoundError
from apps.merchants.models import ApiKey, Merchant
from apps.merchants.services import hash_api_key

_KEY_PREFIXES = ("sk_test_", "sk_live_", "pk_test_", "pk_live_")


def api_key_authenticate(raw_key: str) -> ApiKey:
    """Resolves a presented key or raises the precise 401."""
    if not raw_key.startswith(_KEY_PREFIXES) or len(raw_key) < 20 or not raw_key.isascii():
        raise AuthenticationError(
            "Malformed API key: expected 'Bearer sk_test_…' (or sk_live_, pk_test_, pk_live_).",
            code="api_key_malformed",
        )
    try:
        key = ApiKey.objects.select_related("merchant").get(key_hash=hash_api_key(raw_key))
    except ApiKey.DoesNotExist:
        raise AuthenticationError("Invalid API key provided.", code="api_key_invalid") from None
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
