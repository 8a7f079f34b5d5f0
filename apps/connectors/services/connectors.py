"""Connectors: create, validate and update a merchant's account at a PSP (credentials sealed,
the endpoint one of the platform's for the type and mode, never a URL of the caller's, fee
schedules), and what the gateway needs for a call: the decrypted credentials, the endpoint URL
checked again now, the adapter configuration."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.connectors import endpoints
from apps.connectors.endpoints import EndpointRefused
from apps.connectors.fees import REGION_GROUPS
from apps.connectors.models import Connector
from apps.connectors.services._shared import MANUALLY_DISABLED, _invalid
from apps.core.audit import Actor, audit_record, diff
from apps.core.cards import CARD_BRANDS as BRANDS
from apps.core.crypto import Ciphertext, decrypt, encrypt
from apps.core.errors import InvalidRequestError
from apps.core.ids import new_public_id
from apps.core.money import normalize_currency
from apps.psp_adapters.contract import ConnectorConfig
from apps.psp_adapters.registry import connector_types

logger = logging.getLogger(__name__)

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_FEE_KEYS = {"brand", "region", "currency", "fixed", "percent_bps", "kind"}
# a line of kind "dispute" is the PSP's fee per dispute (its `fixed`), not a payment fee
_FEE_KINDS = ("payment", "dispute")


def _credentials_hint(credentials: dict) -> str:
    key = credentials.get("api_key", "")
    return f"{key[:8]}…{key[-4:]}" if len(key) > 12 else "…"


def _validate_currencies(values: Any) -> list[str]:
    if not isinstance(values, list) or not values:
        raise _invalid(
            "A connector must support at least one currency.",
            "supported_currencies",
            "parameter_missing",
        )
    currencies = [
        normalize_currency(c, param=f"supported_currencies[{i}]") for i, c in enumerate(values)
    ]
    return sorted(set(currencies), key=currencies.index)


def _validate_brands(values: Any) -> list[str]:
    if values is None:
        return []
    if not isinstance(values, list):
        raise _invalid("supported_brands must be a list ([] = every brand).", "supported_brands")
    for i, brand in enumerate(values):
        if not isinstance(brand, str) or brand.lower() not in BRANDS:
            raise _invalid(
                f"Unknown card brand {brand!r}; use {', '.join(BRANDS)}.", f"supported_brands[{i}]"
            )
    return [b.lower() for b in values]


def _validate_countries(values: Any) -> list[str]:
    if values is None:
        return []
    if not isinstance(values, list):
        raise _invalid(
            "supported_countries must be a list ([] = every country).", "supported_countries"
        )
    for i, country in enumerate(values):
        if not isinstance(country, str) or not _COUNTRY.match(country.upper()):
            raise _invalid(
                f"{country!r} is not a two-letter ISO 3166 country code.",
                f"supported_countries[{i}]",
            )
    return [c.upper() for c in values]


def _validate_fee_schedule(lines: Any) -> list[dict]:
    if lines is None:
        return []
    if not isinstance(lines, list):
        raise _invalid("fee_schedule must be a list of fee lines.", "fee_schedule")
    clean = []
    for i, line in enumerate(lines):
        param = f"fee_schedule[{i}]"
        if not isinstance(line, dict):
            raise _invalid(
                'A fee line is {"brand", "region", "currency", "fixed", "percent_bps"}.', param
            )
        unknown = sorted(set(line) - _FEE_KEYS)
        if unknown:
            raise _invalid(
                f"Unknown key {unknown[0]!r} in a fee line.",
                f"{param}[{unknown[0]}]",
                "parameter_unknown",
            )
        brand = line.get("brand", "*")
        if brand != "*" and (not isinstance(brand, str) or brand.lower() not in BRANDS):
            raise _invalid(f"Unknown card brand {brand!r}.", f"{param}[brand]")
        region = line.get("region", "*")
        if not isinstance(region, str) or not (
            region in ("*", *REGION_GROUPS) or _COUNTRY.match(region.upper())
        ):
            raise _invalid(
                "region is '*', 'eea', 'non_eea' or a two-letter country code.", f"{param}[region]"
            )
        currency = line.get("currency", "*")
        if currency != "*":
            currency = normalize_currency(currency, param=f"{param}[currency]")
        kind = line.get("kind", "payment")
        if kind not in _FEE_KINDS:
            raise _invalid("kind is 'payment' (default) or 'dispute'.", f"{param}[kind]")
        values = {"kind": kind} if kind != "payment" else {}
        for key, hi in (("fixed", 10**9), ("percent_bps", 10_000)):
            value = line.get(key, 0)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= hi:
                raise _invalid(f"{key} must be a whole number from 0 to {hi}.", f"{param}[{key}]")
            values[key] = value
        clean.append(
            {
                "brand": brand.lower() if brand != "*" else "*",
                "region": region.upper()
                if _COUNTRY.match(region.upper()) and region not in REGION_GROUPS
                else region,
                "currency": currency,
                **values,
            }
        )
    return clean


def _validate_common(
    *,
    name: Any = None,
    credentials: Any = None,
    timeouts: dict | None = None,
    windows: dict | None = None,
) -> None:
    if name is not None and (not isinstance(name, str) or not 1 <= len(name.strip()) <= 100):
        raise _invalid("name must be 1 to 100 characters.", "name")
    if credentials is not None and (
        not isinstance(credentials, dict)
        or not credentials
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in credentials.items())
    ):
        raise _invalid(
            'credentials must be an object of strings, e.g. {"api_key": …}.', "credentials"
        )
    for key, value in (timeouts or {}).items():
        if value is not None and (not isinstance(value, int) or not 100 <= value <= 60_000):
            raise _invalid(f"{key} must be from 100 to 60000 milliseconds.", key)
    for key, value in (windows or {}).items():
        if value is not None and (not isinstance(value, int) or not 0 <= value <= 31):
            raise _invalid(f"{key} must be from 0 to 31 days.", key)


def connector_validate(**fields) -> dict:
    """Validates connector fields (any subset, as given to create/update) and returns them
    normalized; raises InvalidRequestError naming the param. Used by the admin forms too."""
    _validate_common(
        name=fields.get("name"),
        credentials=fields.get("credentials"),
        timeouts={k: fields[k] for k in ("connect_timeout_ms", "read_timeout_ms") if k in fields},
        windows={
            k: fields[k]
            for k in ("authorization_window_days", "settlement_delay_days")
            if k in fields
        },
    )
    if "connector_type" in fields and fields["connector_type"] not in connector_types():
        raise _invalid(f"Unknown connector type {fields['connector_type']!r}.", "connector_type")
    clean = dict(fields)
    if "supported_currencies" in fields:
        clean["supported_currencies"] = _validate_currencies(fields["supported_currencies"])
    if "supported_brands" in fields:
        clean["supported_brands"] = _validate_brands(fields["supported_brands"])
    if "supported_countries" in fields:
        clean["supported_countries"] = _validate_countries(fields["supported_countries"])
    if "fee_schedule" in fields:
        clean["fee_schedule"] = _validate_fee_schedule(fields["fee_schedule"])
    return clean


def connector_endpoint_validate(
    *,
    connector_type: str,
    livemode: bool,
    endpoint: Any = None,
    live_url_prefix: Any = "",
    simulator_account: Any = "",
    public_id: str = "",
) -> dict:
    """The endpoint fields, normalized (`endpoint` defaults to the mode's: production in live
    mode, the PSP's test host in test mode), or InvalidRequestError naming the param. Used by
    create, update and the admin form."""
    if connector_type not in connector_types():
        raise _invalid(f"Unknown connector type {connector_type!r}.", "connector_type")
    if endpoint is None or endpoint == "":
        endpoint = endpoints.default(connector_type, livemode)
    for param, value in (
        ("endpoint", endpoint),
        ("live_url_prefix", live_url_prefix),
        ("simulator_account", simulator_account),
    ):
        if value is not None and not isinstance(value, str):
            raise _invalid(f"{param} must be a string.", param)
    live_url_prefix = live_url_prefix or ""
    simulator_account = simulator_account or ""
    if endpoint == endpoints.SIMULATOR and not simulator_account:
        simulator_account = public_id  # each connector its own simulated account
    try:
        endpoints.resolve(
            connector_type=connector_type,
            livemode=livemode,
            endpoint=endpoint or "",
            live_url_prefix=live_url_prefix,
            simulator_account=simulator_account,
        )
    except EndpointRefused as exc:
        raise _invalid(exc.message, exc.param or "endpoint") from None
    return {
        "endpoint": endpoint,
        "live_url_prefix": live_url_prefix,
        "simulator_account": simulator_account,
    }


def _seal(credentials: dict) -> Ciphertext:
    return encrypt(json.dumps(credentials).encode(), associated_data=b"connector-credentials")


def connector_create(
    *,
    merchant,
    livemode: bool,
    name: str,
    connector_type: str,
    credentials: dict,
    supported_currencies: list[str],
    actor: Actor,
    endpoint: str | None = None,
    live_url_prefix: str = "",
    simulator_account: str = "",
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
    """A merchant's account at a PSP. Where its requests go is one of the platform's endpoints
    for the type and mode (`endpoint`, default the mode's own), never a URL of the caller's."""
    clean = connector_validate(
        name=name,
        connector_type=connector_type,
        credentials=credentials,
        supported_currencies=supported_currencies,
        supported_brands=supported_brands,
        supported_countries=supported_countries,
        fee_schedule=fee_schedule,
        connect_timeout_ms=connect_timeout_ms,
        read_timeout_ms=read_timeout_ms,
        authorization_window_days=authorization_window_days,
        settlement_delay_days=settlement_delay_days,
    )
    currencies, brands = clean["supported_currencies"], clean["supported_brands"]
    countries, fees = clean["supported_countries"], clean["fee_schedule"]
    public_id = new_public_id("mca")
    where = connector_endpoint_validate(
        connector_type=connector_type,
        livemode=livemode,
        endpoint=endpoint,
        live_url_prefix=live_url_prefix,
        simulator_account=simulator_account,
        public_id=public_id,
    )
    if Connector.objects.filter(merchant=merchant, livemode=livemode, name=name).exists():
        raise InvalidRequestError(
            f"A connector named {name!r} already exists.", code="connector_name_taken", param="name"
        )
    sealed = _seal(credentials)
    with transaction.atomic():
        connector = Connector.objects.create(
            public_id=public_id,
            merchant=merchant,
            livemode=livemode,
            name=name,
            connector_type=connector_type,
            **where,
            credentials_encrypted=sealed.blob,
            credentials_key_id=sealed.key_id,
            credentials_hint=_credentials_hint(credentials),
            enabled=enabled,
            disabled_reason="" if enabled else MANUALLY_DISABLED,
            disabled_at=None if enabled else timezone.now(),
            priority=priority,
            supported_currencies=currencies,
            supported_brands=brands,
            supported_countries=countries,
            fee_schedule=fees,
            authorization_window_days=authorization_window_days,
            settlement_delay_days=settlement_delay_days,
            connect_timeout_ms=connect_timeout_ms,
            read_timeout_ms=read_timeout_ms,
        )
        audit_record(
            actor=actor,
            action="connector.created",
            object_type="connector",
            object_id=connector.public_id,
            merchant_id=merchant.id,
            livemode=livemode,
            changes={
                "name": [None, name],
                "connector_type": [None, connector_type],
                "endpoint": [None, where["endpoint"]],
            },
        )
    return connector


# What a connector's owner sets (the API and the admin form, in the form's order):
# connector_type at create only, every other one at create and update.
CONNECTOR_SETTINGS = (
    "name",
    "connector_type",
    "endpoint",
    "live_url_prefix",
    "simulator_account",
    "enabled",
    "priority",
    "supported_currencies",
    "supported_brands",
    "supported_countries",
    "fee_schedule",
    "authorization_window_days",
    "settlement_delay_days",
    "connect_timeout_ms",
    "read_timeout_ms",
)
_ENDPOINT_FIELDS = ("endpoint", "live_url_prefix", "simulator_account")
_UPDATABLE = tuple(name for name in CONNECTOR_SETTINGS if name != "connector_type")


def connector_update(
    *, connector: Connector, actor: Actor, credentials: dict | None = None, **changes
) -> Connector:
    """Partial update; `credentials` replaces the stored credentials (never returned). The
    endpoint fields are validated together, as they will be combined: switching to the
    simulator gives the connector its own simulated account, leaving it clears it."""
    if "base_url" in changes:
        raise _invalid(endpoints.BASE_URL_REFUSED, "base_url", "parameter_unknown")
    unknown = sorted(set(changes) - set(_UPDATABLE))
    if unknown:
        raise _invalid(f"{unknown[0]} cannot be changed.", unknown[0], "parameter_unknown")
    if credentials is not None:
        connector_validate(credentials=credentials)
    changes = connector_validate(**changes)
    with transaction.atomic():
        connector = Connector.objects.select_for_update().get(pk=connector.pk)
        if any(key in changes for key in _ENDPOINT_FIELDS):
            endpoint = changes.get("endpoint", connector.endpoint)
            moved = endpoint != connector.endpoint  # options of the old endpoint do not carry over
            where = connector_endpoint_validate(
                connector_type=connector.connector_type,
                livemode=connector.livemode,
                public_id=connector.public_id,
                endpoint=endpoint,
                live_url_prefix=changes.get(
                    "live_url_prefix", "" if moved else connector.live_url_prefix
                ),
                simulator_account=changes.get(
                    "simulator_account", "" if moved else connector.simulator_account
                ),
            )
            for key in _ENDPOINT_FIELDS:
                changes.pop(key, None)
                if where[key] != getattr(connector, key):
                    changes[key] = where[key]
        if (
            "name" in changes
            and changes["name"] != connector.name
            and Connector.objects.filter(
                merchant_id=connector.merchant_id, livemode=connector.livemode, name=changes["name"]
            ).exists()
        ):
            raise InvalidRequestError(
                f"A connector named {changes['name']!r} already exists.",
                code="connector_name_taken",
                param="name",
            )
        before = {k: getattr(connector, k) for k in changes}
        for key, value in changes.items():
            setattr(connector, key, value)
        if "enabled" in changes and changes["enabled"] != before["enabled"]:
            connector.disabled_reason = "" if connector.enabled else MANUALLY_DISABLED
            connector.disabled_at = None if connector.enabled else timezone.now()
        audit_changes = diff(before, changes)
        if credentials is not None:
            sealed = _seal(credentials)
            connector.credentials_encrypted = sealed.blob
            connector.credentials_key_id = sealed.key_id
            connector.credentials_hint = _credentials_hint(credentials)
            audit_changes["credentials"] = ["[redacted]", "[redacted]"]
        connector.save()
        if audit_changes:
            audit_record(
                actor=actor,
                action="connector.updated",
                object_type="connector",
                object_id=connector.public_id,
                merchant_id=connector.merchant_id,
                livemode=connector.livemode,
                changes=audit_changes,
            )
    return connector


def connector_credentials(connector: Connector) -> dict:
    blob = decrypt(
        Ciphertext(
            key_id=connector.credentials_key_id, blob=bytes(connector.credentials_encrypted)
        ),
        associated_data=b"connector-credentials",
    )
    return json.loads(blob)


def connector_endpoint_url(connector: Connector) -> str:
    """Where the connector's requests go, built from the platform's configuration now; raises
    EndpointRefused (api_error, nothing sent) when the row does not fit it (tampered, written
    before the allow-list, or the configuration changed since)."""
    try:
        return endpoints.resolve(
            connector_type=connector.connector_type,
            livemode=connector.livemode,
            endpoint=connector.endpoint,
            live_url_prefix=connector.live_url_prefix,
            simulator_account=connector.simulator_account,
        )
    except EndpointRefused as exc:
        logger.error(
            "connectors: connector %s refused, nothing sent: %s", connector.public_id, exc.message
        )
        raise EndpointRefused(
            f"Connector {connector.public_id} is not configured with an endpoint the platform "
            f"allows, so nothing was sent: {exc.message}",
            param=None,
        ) from None


def connector_simulator_account(connector: Connector) -> str | None:
    """The simulated account behind a simulator connector (`/<type>/<account>`), else None."""
    if connector.endpoint != endpoints.SIMULATOR:
        return None
    return connector.simulator_account or connector.public_id


def connector_config(connector: Connector) -> ConnectorConfig:
    """What an adapter needs for one call; credentials are decrypted only here, and the base URL
    is the platform's endpoint for the connector, checked again now (EndpointRefused)."""
    base_url = connector_endpoint_url(connector)
    credentials = connector_credentials(connector)
    return ConnectorConfig(
        connector_id=connector.public_id,
        connector_type=connector.connector_type,
        base_url=base_url,
        credentials=credentials,
        webhook_secret=credentials.get("webhook_secret", ""),
        connect_timeout=connector.connect_timeout_ms / 1000,
        read_timeout=connector.read_timeout_ms / 1000,
    )
