from __future__ import annotations

import json

from django.db import transaction

from apps.core.audit import Actor, audit_record
from apps.core.crypto import Ciphertext, decrypt, encrypt
from apps.core.errors import InvalidRequestError
from apps.core.money import normalize_currency
from apps.psp_adapters.contract import ConnectorConfig
from apps.psp_adapters.registry import connector_types
from apps.routing.models import Connector


def _credentials_hint(credentials: dict) -> str:
    key = credentials.get("api_key", "")
    return f"{key[:8]}…{key[-4:]}" if len(key) > 12 else "…"


def connector_create(
    *,
    merchant,
    livemode: bool,
    name: str,
    connector_type: str,
    base_url: str,
    credentials: dict,
    supported_currencies: list[str],
    actor: Actor,
    priority: int = 100,
    enabled: bool = True,
    supported_brands: list[str] | None = None,
    supported_countries: list[str] | None = None,
    fee_schedule: list[dict] | None = None,
    authorization_window_days: int = 7,
    settlement_delay_days: int = 2,
    connect_timeout_ms: int = 2000,
    read_timeout_ms: int = 10000,
) -> Connector:
    if connector_type not in connector_types():
        raise InvalidRequestError(f"Unknown connector type {connector_type!r}.",
                                  code="parameter_invalid", param="connector_type")
    if not supported_currencies:
        raise InvalidRequestError("A connector must support at least one currency.",
                                  code="parameter_missing", param="supported_currencies")
    currencies = [normalize_currency(c, param="supported_currencies") for c in
                  supported_currencies]
    sealed = encrypt(json.dumps(credentials).encode(), associated_data=b"connector-credentials")
    with transaction.atomic():
        connector = Connector.objects.create(
            merchant=merchant, livemode=livemode, name=name, connector_type=connector_type,
            base_url=base_url.rstrip("/"), credentials_encrypted=sealed.blob,
            credentials_key_id=sealed.key_id, credentials_hint=_credentials_hint(credentials),
            enabled=enabled, priority=priority, supported_currencies=currencies,
            supported_brands=supported_brands or [], supported_countries=supported_countries or [],
            fee_schedule=fee_schedule or [], authorization_window_days=authorization_window_days,
            settlement_delay_days=settlement_delay_days, connect_timeout_ms=connect_timeout_ms,
            read_timeout_ms=read_timeout_ms,
        )
        audit_record(actor=actor, action="connector.created", object_type="connector",
                     object_id=connector.public_id, merchant_id=merchant.id, livemode=livemode,
                     changes={"name": [None, name], "connector_type": [None, connector_type]})
    return connector


def connector_credentials(connector: Connector) -> dict:
    blob = decrypt(
        Ciphertext(key_id=connector.credentials_key_id,
                   blob=bytes(connector.credentials_encrypted)),
        associated_data=b"connector-credentials",
    )
    return json.loads(blob)


def connector_config(connector: Connector) -> ConnectorConfig:
    """What an adapter needs for one call; credentials are decrypted only here."""
    credentials = connector_credentials(connector)
    return ConnectorConfig(
        connector_id=connector.public_id,
        connector_type=connector.connector_type,
        base_url=connector.base_url,
        credentials=credentials,
        webhook_secret=credentials.get("webhook_secret", ""),
        connect_timeout=connector.connect_timeout_ms / 1000,
        read_timeout=connector.read_timeout_ms / 1000,
    )


def estimate_fee(*, connector: Connector, amount: int, currency: str, brand: str = "*",
                 region: str = "*") -> int:
    """PSP fee in minor units from the connector's fee schedule: the most specific matching
    line wins (brand, then region, then currency); rounded half up to a whole minor unit."""
    best, best_score = None, -1
    for line in connector.fee_schedule:
        score = 0
        for key, value, weight in (("brand", brand, 4), ("region", region, 2),
                                   ("currency", currency, 1)):
            wanted = line.get(key, "*")
            if wanted not in ("*", value):
                break
            score += weight if wanted != "*" else 0
        else:
            if score > best_score:
                best, best_score = line, score
    if best is None:
        return 0
    return int(best.get("fixed", 0)) + (amount * int(best.get("percent_bps", 0)) + 5000) // 10000
