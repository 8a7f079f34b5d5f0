"""Webhook signatures exactly as Stripe and Adyen document them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any


def stripe_signature_header(payload: bytes, secret: str, timestamp: int) -> str:
    """`Stripe-Signature: t=…,v1=…`: HMAC-SHA256 (hex) of f"{t}.{payload}" keyed by the secret."""
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def adyen_signing_string(item: dict[str, Any]) -> str:
    """pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:
    eventCode:success, with empty strings for absent fields."""
    amount = item.get("amount") or {}
    parts = [
        item.get("pspReference", ""),
        item.get("originalReference", ""),
        item.get("merchantAccountCode", ""),
        item.get("merchantReference", ""),
        str(amount.get("value", "")),
        amount.get("currency", ""),
        item.get("eventCode", ""),
        item.get("success", ""),
    ]
    return ":".join("" if part is None else str(part) for part in parts)


def adyen_hmac_signature(item: dict[str, Any], hex_key: str) -> str:
    """Base64 HMAC-SHA256 of the signing string, keyed by the hex-decoded HMAC key."""
    key = binascii.unhexlify(hex_key)
    digest = hmac.new(key, adyen_signing_string(item).encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def is_hex_key(value: str) -> bool:
    if not value or len(value) % 2:
        return False
    try:
        binascii.unhexlify(value)
    except (binascii.Error, ValueError):
        return False
    return True
