"""Signed PSP notifications, built the way Stripe and Adyen send them."""

from __future__ import annotations

import json
import secrets
import time

from apps.psp_simulator.signing import adyen_hmac_signature, stripe_signature_header
from tests.intents.conftest import ADYEN_CREDENTIALS, STRIPE_CREDENTIALS

STRIPE_SECRET = STRIPE_CREDENTIALS["webhook_secret"]
ADYEN_HMAC_KEY = ADYEN_CREDENTIALS["hmac_key"]


def stripe_event(event_type: str, obj: dict, *, event_id: str | None = None) -> dict:
    return {
        "id": event_id or f"evt_{secrets.token_hex(8)}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": False,
    }


def stripe_pi(
    pi_id: str,
    *,
    attempt_id: str,
    status: str = "succeeded",
    amount: int = 2000,
    capture_method: str = "automatic",
    **extra,
) -> dict:
    return {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "currency": "eur",
        "amount_received": amount if status == "succeeded" else 0,
        "amount_capturable": amount if status == "requires_capture" else 0,
        "capture_method": capture_method,
        "status": status,
        "metadata": {"attempt_id": attempt_id},
        **extra,
    }


def stripe_request(
    event: dict, *, secret: str = STRIPE_SECRET, timestamp: int | None = None
) -> tuple[bytes, dict]:
    body = json.dumps(event).encode()
    header = stripe_signature_header(body, secret, timestamp or int(time.time()))
    return body, {"HTTP_STRIPE_SIGNATURE": header}


def adyen_item(
    event_code: str,
    *,
    psp_reference: str,
    success: bool = True,
    amount: int = 2000,
    merchant_reference: str = "",
    original_reference: str = "",
    reason: str = "",
) -> dict:
    item = {
        "additionalData": {},
        "amount": {"value": amount, "currency": "EUR"},
        "eventCode": event_code,
        "eventDate": "2026-11-23T10:00:00+01:00",
        "merchantAccountCode": "DemoShopECOM",
        "merchantReference": merchant_reference,
        "pspReference": psp_reference,
        "reason": reason,
        "success": "true" if success else "false",
    }
    if original_reference:
        item["originalReference"] = original_reference
    return item


def adyen_request(*items: dict, key: str = ADYEN_HMAC_KEY) -> bytes:
    signed = []
    for item in items:
        item = json.loads(json.dumps(item))
        item["additionalData"]["hmacSignature"] = adyen_hmac_signature(item, key)
        signed.append({"NotificationRequestItem": item})
    return json.dumps({"live": "false", "notificationItems": signed}).encode()
