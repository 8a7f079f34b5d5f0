"""Writes of the routing app: connectors, routing profiles and versions, failover settings,
breakers and connector health (auto-disable, probes, re-enable)."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core.audit import Actor, audit_record, diff
from apps.core.crypto import Ciphertext, decrypt, encrypt
from apps.core.errors import ConflictError, InvalidRequestError
from apps.core.ids import new_public_id
from apps.core.money import normalize_currency
from apps.psp_adapters.contract import (
    CancelRequest,
    ConnectorConfig,
    Outcome,
    PSPResult,
    RequestError,
    RetrieveRequest,
)
from apps.psp_adapters.registry import connector_types, get_adapter
from apps.routing import endpoints, health
from apps.routing.endpoints import EndpointRefused
from apps.routing.fees import REGION_GROUPS, estimate_fee_from_schedule
from apps.routing.models import (
    Connector,
    RoutingProfile,
    RoutingProfileVersion,
    RoutingSettings,
    routing_changed,
)
from apps.routing.rules import BRANDS, RuleError, RuleSet, parse_rule_set

logger = logging.getLogger(__name__)

AUTO_DISABLED = "auto_error_rate"
MANUALLY_DISABLED = "manual"
ENDPOINT_NOT_ALLOWED = "endpoint_not_allowed"  # disabled: its endpoint left the allow-list
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_FEE_KEYS = {"brand", "region", "currency", "fixed", "percent_bps"}


def _setting(name: str, default):
    return getattr(settings, name, default)


# --------------------------------------------------------------------------- connectors


def _credentials_hint(credentials: dict) -> str:
    key = credentials.get("api_key", "")
    return f"{key[:8]}…{key[-4:]}" if len(key) > 12 else "…"


def _invalid(message: str, param: str, code: str = "parameter_invalid") -> InvalidRequestError:
    return InvalidRequestError(message, code=code, param=param)


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
        values = {}
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


def routing_rules_validate(*, merchant_id: int, livemode: bool, rules: Any, fallback: Any) -> dict:
    """Validates a version's rules and fallback; returns the normalized definition."""
    return _rule_set(
        merchant_id=merchant_id, livemode=livemode, rules=rules, fallback=fallback
    ).definition


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


_ENDPOINT_FIELDS = ("endpoint", "live_url_prefix", "simulator_account")
_UPDATABLE = (
    "name",
    *_ENDPOINT_FIELDS,
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
            "routing: connector %s refused, nothing sent: %s", connector.public_id, exc.message
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


def estimate_fee(
    *, connector: Connector, amount: int, currency: str, brand: str = "*", region: str = "*"
) -> int:
    """PSP fee in minor units from the connector's fee schedule (apps.routing.fees): the most
    specific matching line wins (brand, then region, then currency); rounded half up.
    `region` is the issuer's country code ("*" when unknown)."""
    return estimate_fee_from_schedule(
        connector.fee_schedule, amount=amount, currency=currency, brand=brand, region=region
    )


# --------------------------------------------------------------------------- profiles


def _rule_set(
    *, merchant_id: int, livemode: bool, rules: Any, fallback: Any, require_enabled: bool = True
) -> RuleSet:
    connectors = {
        c.public_id: {"enabled": c.enabled or not require_enabled}
        for c in Connector.objects.filter(merchant_id=merchant_id, livemode=livemode)
    }
    try:
        return parse_rule_set(rules, fallback, connectors)
    except RuleError as exc:
        raise InvalidRequestError(exc.message, code=exc.code, param=exc.param) from None


def _version_create(
    *, profile: RoutingProfile, rule_set: RuleSet, actor: Actor, note: str
) -> RoutingProfileVersion:
    last = profile.versions.order_by("-number").values_list("number", flat=True).first() or 0
    version = RoutingProfileVersion.objects.create(
        profile=profile,
        number=last + 1,
        rules=rule_set.definition["rules"],
        fallback=rule_set.definition["fallback"],
        note=note[:500],
        created_by=f"{actor.type}:{actor.id}"[:150],
    )
    audit_record(
        actor=actor,
        action="routing_profile.version_created",
        object_type="routing_profile",
        object_id=profile.public_id,
        merchant_id=profile.merchant_id,
        livemode=profile.livemode,
        changes={
            "version": [last or None, version.number],
            "rules": [None, len(rule_set.rules)],
            "fallback": [None, list(rule_set.fallback)],
        },
    )
    return version


def _validate_name(name: Any) -> str:
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 100:
        raise _invalid("name must be 1 to 100 characters.", "name")
    return name.strip()


def routing_profile_create(
    *,
    merchant,
    livemode: bool,
    name: str,
    rules: list,
    fallback: list | None,
    actor: Actor,
    note: str = "",
    activate: bool = False,
) -> RoutingProfile:
    """A new profile with version 1. Everything is validated before anything is written."""
    name = _validate_name(name)
    rule_set = _rule_set(merchant_id=merchant.id, livemode=livemode, rules=rules, fallback=fallback)
    with transaction.atomic():
        profile = RoutingProfile.objects.create(merchant=merchant, livemode=livemode, name=name)
        audit_record(
            actor=actor,
            action="routing_profile.created",
            object_type="routing_profile",
            object_id=profile.public_id,
            merchant_id=merchant.id,
            livemode=livemode,
            changes={"name": [None, name]},
        )
        version = _version_create(profile=profile, rule_set=rule_set, actor=actor, note=note)
        if activate:
            profile = routing_profile_activate(
                profile=profile, actor=actor, version_number=version.number
            )
    return profile


def routing_profile_version_create(
    *, profile: RoutingProfile, rules: list, fallback: list | None, actor: Actor, note: str = ""
) -> RoutingProfileVersion:
    """An edit: a new immutable version. It routes only once activated."""
    rule_set = _rule_set(
        merchant_id=profile.merchant_id, livemode=profile.livemode, rules=rules, fallback=fallback
    )
    with transaction.atomic():
        profile = RoutingProfile.objects.select_for_update().get(pk=profile.pk)
        return _version_create(profile=profile, rule_set=rule_set, actor=actor, note=note)


def routing_profile_update(
    *,
    profile: RoutingProfile,
    actor: Actor,
    name: str | None = None,
    rules: list | None = None,
    fallback: list | None = None,
    note: str = "",
    activate: bool = False,
) -> RoutingProfile:
    """Renames, and/or records a new version from `rules` (+ `fallback`), optionally active."""
    if name is not None:
        name = _validate_name(name)
    rule_set = None
    if rules is not None:
        rule_set = _rule_set(
            merchant_id=profile.merchant_id,
            livemode=profile.livemode,
            rules=rules,
            fallback=fallback,
        )
    elif fallback is not None:
        raise _invalid(
            "Pass rules together with fallback: a version holds both.", "rules", "parameter_missing"
        )
    with transaction.atomic():
        profile = RoutingProfile.objects.select_for_update().get(pk=profile.pk)
        if name is not None and name != profile.name:
            audit_record(
                actor=actor,
                action="routing_profile.renamed",
                object_type="routing_profile",
                object_id=profile.public_id,
                merchant_id=profile.merchant_id,
                livemode=profile.livemode,
                changes={"name": [profile.name, name]},
            )
            profile.name = name
            profile.save(update_fields=["name", "updated_at"])
        if rule_set is not None:
            version = _version_create(profile=profile, rule_set=rule_set, actor=actor, note=note)
            if activate:
                profile = routing_profile_activate(
                    profile=profile, actor=actor, version_number=version.number
                )
    return profile


def routing_profile_activate(
    *, profile: RoutingProfile, actor: Actor, version_number: int | None = None
) -> RoutingProfile:
    """Makes `version_number` (default: the latest) of this profile the merchant's routing, in
    one transaction: every confirm routes either entirely with the old version or entirely with
    the new one. Re-activating an old version is the same call."""
    with transaction.atomic():
        # lock every profile of the merchant in this mode, always in id order
        locked = list(
            RoutingProfile.objects.select_for_update()
            .filter(merchant_id=profile.merchant_id, livemode=profile.livemode)
            .order_by("id")
        )
        profile = next(p for p in locked if p.pk == profile.pk)
        versions = profile.versions.all()
        version = (
            versions.order_by("-number").first()
            if version_number is None
            else versions.filter(number=version_number).first()
        )
        if version is None:
            raise InvalidRequestError(
                f"Routing profile {profile.public_id} has no version {version_number}.",
                code="resource_missing",
                param="version",
            )
        # its connectors must still exist; disabled ones are skipped at routing time (an
        # outage must not block re-activating a known-good version)
        _rule_set(
            merchant_id=profile.merchant_id,
            livemode=profile.livemode,
            rules=version.rules,
            fallback=version.fallback,
            require_enabled=False,
        )
        previous = next((p for p in locked if p.is_active), None)
        before = (
            [previous.public_id, previous.active_version.number]
            if previous is not None and previous.active_version_id
            else None
        )
        for other in locked:
            if other.is_active and other.pk != profile.pk:
                other.is_active = False
                other.save(update_fields=["is_active", "updated_at"])
        profile.is_active = True
        profile.active_version = version
        profile.activated_at = timezone.now()
        profile.save(update_fields=["is_active", "active_version", "activated_at", "updated_at"])
        audit_record(
            actor=actor,
            action="routing_profile.activated",
            object_type="routing_profile",
            object_id=profile.public_id,
            merchant_id=profile.merchant_id,
            livemode=profile.livemode,
            changes={"active": [before, [profile.public_id, version.number]]},
        )
    return profile


def routing_profile_deactivate(*, profile: RoutingProfile, actor: Actor) -> RoutingProfile:
    """No active profile: the merchant routes by connector priority again."""
    with transaction.atomic():
        profile = RoutingProfile.objects.select_for_update().get(pk=profile.pk)
        if not profile.is_active:
            raise ConflictError(
                "This routing profile is not active.", code="routing_profile_inactive"
            )
        number = profile.active_version.number if profile.active_version_id else None
        profile.is_active = False
        profile.save(update_fields=["is_active", "updated_at"])
        audit_record(
            actor=actor,
            action="routing_profile.deactivated",
            object_type="routing_profile",
            object_id=profile.public_id,
            merchant_id=profile.merchant_id,
            livemode=profile.livemode,
            changes={"active": [[profile.public_id, number], None]},
        )
    return profile


def routing_settings_update(
    *, merchant, actor: Actor, max_attempts: int | None, time_budget_seconds: int | None
) -> RoutingSettings:
    """Per-merchant failover limits; None falls back to the platform settings."""
    if max_attempts is not None and (
        not isinstance(max_attempts, int) or not 1 <= max_attempts <= 10
    ):
        raise _invalid("max_attempts must be from 1 to 10.", "max_attempts")
    if time_budget_seconds is not None and (
        not isinstance(time_budget_seconds, int) or not 1 <= time_budget_seconds <= 300
    ):
        raise _invalid("time_budget_seconds must be from 1 to 300.", "time_budget_seconds")
    with transaction.atomic():
        row, _ = RoutingSettings.objects.select_for_update().get_or_create(merchant=merchant)
        before = {"max_attempts": row.max_attempts, "time_budget_seconds": row.time_budget_seconds}
        row.max_attempts = max_attempts
        row.time_budget_seconds = time_budget_seconds
        row.save()
        changes = diff(
            before, {"max_attempts": max_attempts, "time_budget_seconds": time_budget_seconds}
        )
        if changes:
            audit_record(
                actor=actor,
                action="routing_settings.updated",
                object_type="routing_settings",
                object_id=merchant.public_id,
                merchant_id=merchant.id,
                changes=changes,
            )
    return row


# --------------------------------------------------------------------------- breakers, health


def connector_call(
    *, connector: Connector, call: Callable[[], PSPResult], facts: dict
) -> PSPResult:
    """Runs one PSP call under the connector's circuit breaker (state shared in Redis) and
    records the answer in the connector's health and success rates (`facts`: the payment's
    segment), in the same Redis round trip as the breaker's failure count. A call the breaker
    refuses comes back as ERROR with retryable_elsewhere: nothing was sent; so does a call on a
    connector whose endpoint is outside the platform's allow-list (`call` is never run). An
    exception from `call` propagates, unrecorded (see `connector_health_record`)."""
    try:
        connector_endpoint_url(connector)
    except EndpointRefused as exc:
        # defence in depth: a row outside the allow-list never reaches `call`
        return PSPResult(
            outcome=Outcome.ERROR,
            raw_code=exc.code,
            raw_message=exc.message[:500],
            retryable_elsewhere=True,
            request_error=RequestError.CONFIGURATION,
        )
    recorded: list[health.Recorded] = []

    def bookkeeping(result: PSPResult, pipe) -> Callable[[list], None]:
        return health.record_on(
            pipe, connector.public_id, result, facts, result.latency_ms, recorded.append
        )

    result = health.breaker(connector.public_id).call(call, bookkeeping=bookkeeping)
    if recorded:
        _evaluate_recorded(connector, recorded[0])
    return result


def connector_health_record(
    *, connector: Connector, result: PSPResult, facts: dict, latency_ms: int | None = None
) -> None:
    """Rolling health and success-rate data after a PSP call that `connector_call` could not
    record (the adapter raised), in one Redis round trip; never raises."""
    recorded = health.record(
        connector.public_id, result, facts, result.latency_ms if latency_ms is None else latency_ms
    )
    _evaluate_recorded(connector, recorded)


def _evaluate_recorded(connector: Connector, recorded: health.Recorded) -> None:
    """For a failure, at most every two seconds, the error rate over the window is checked
    too (auto-disable). Never raises."""
    if recorded.window_calls is None:
        return
    try:
        _auto_disable_if_over(connector, recorded.window_calls, recorded.window_failures or 0)
    except Exception:
        logger.exception("routing: health evaluation of %s failed", connector.public_id)


def _auto_disable_if_over(connector: Connector, calls: int, failures: int, snapshot=None) -> bool:
    threshold = float(_setting("ROUTING_AUTO_DISABLE_ERROR_RATE", 0.5))
    min_calls = int(_setting("ROUTING_AUTO_DISABLE_MIN_CALLS", 10))
    if not connector.enabled or calls < max(1, min_calls) or failures / calls < threshold:
        return False
    if snapshot is None:
        snapshot = health.snapshots([connector.public_id])[connector.public_id].as_dict()
    return connector_auto_disable(connector=connector, snapshot=snapshot)


def connector_breaker_force(*, connector: Connector, mode: str | None, actor: Actor) -> str:
    """Ops override: "open" (no traffic), "closed" (all traffic, no counting) or None (back to
    automatic, closed). Needs `core.force_breaker` in the admin."""
    if mode not in (None, "open", "closed"):
        raise _invalid("mode must be 'open', 'closed' or null.", "mode")
    breaker = health.breaker(connector.public_id)
    before = breaker.forced()
    breaker.force(mode)
    routing_changed(connector.merchant_id, connector.livemode)
    audit_record(
        actor=actor,
        action="connector.breaker_forced",
        object_type="connector",
        object_id=connector.public_id,
        merchant_id=connector.merchant_id,
        livemode=connector.livemode,
        changes={"breaker_forced": [before, mode]},
    )
    return mode or "automatic"


def connector_health_evaluate(*, connector: Connector) -> bool:
    """Disables an enabled connector whose rolling error rate crossed the threshold
    (`ROUTING_AUTO_DISABLE_ERROR_RATE` over at least `ROUTING_AUTO_DISABLE_MIN_CALLS` calls in
    the window). Returns True when it did."""
    if not connector.enabled:
        return False
    try:
        snap = health.snapshots([connector.public_id])[connector.public_id]
    except redis.RedisError:
        return False
    return _auto_disable_if_over(connector, snap.calls, snap.failures, snapshot=snap.as_dict())


def connectors_health_evaluate() -> int:
    """Beat task: evaluates every enabled connector. Returns how many were disabled."""
    disabled = 0
    for connector in Connector.objects.filter(enabled=True):
        disabled += connector_health_evaluate(connector=connector)
    return disabled


def connector_auto_disable(*, connector: Connector, snapshot: dict) -> bool:
    others = (
        Connector.objects.filter(
            merchant_id=connector.merchant_id, livemode=connector.livemode, enabled=True
        )
        .exclude(pk=connector.pk)
        .exists()
    )
    if not others:
        # never take a merchant's last connector away: the breaker still protects each call
        logger.warning(
            "routing: %s over the error threshold but it is the merchant's last "
            "enabled connector; left enabled",
            connector.public_id,
        )
        return False
    with transaction.atomic():
        claimed = Connector.objects.filter(pk=connector.pk, enabled=True).update(
            enabled=False,
            disabled_reason=AUTO_DISABLED,
            disabled_at=timezone.now(),
            updated_at=timezone.now(),
        )
        if not claimed:
            return False
        audit_record(
            actor=Actor.system("connector_health"),
            action="connector.auto_disabled",
            object_type="connector",
            object_id=connector.public_id,
            merchant_id=connector.merchant_id,
            livemode=connector.livemode,
            changes={"enabled": [True, False], "health": [None, snapshot]},
        )
        routing_changed(connector.merchant_id, connector.livemode)
    connector.enabled = False
    connector.disabled_reason = AUTO_DISABLED
    with contextlib.suppress(redis.RedisError):
        health.client().delete(f"routing:probe_ok:{connector.public_id}")
    return True


def connector_auto_enable(*, connector: Connector, probes: int) -> bool:
    with transaction.atomic():
        claimed = Connector.objects.filter(
            pk=connector.pk, enabled=False, disabled_reason=AUTO_DISABLED
        ).update(enabled=True, disabled_reason="", disabled_at=None, updated_at=timezone.now())
        if not claimed:
            return False
        audit_record(
            actor=Actor.system("connector_health"),
            action="connector.auto_enabled",
            object_type="connector",
            object_id=connector.public_id,
            merchant_id=connector.merchant_id,
            livemode=connector.livemode,
            changes={"enabled": [False, True], "successful_probes": [None, probes]},
        )
        routing_changed(connector.merchant_id, connector.livemode)
    # a fresh start: old errors must not disable it again at once
    health.forget(connector.public_id)
    health.breaker(connector.public_id).reset()
    connector.enabled = True
    connector.disabled_reason = ""
    return True


def _probe_stripe(adapter) -> PSPResult:
    # a read of a payment that does not exist: 404 means the API is up and answering
    return adapter.retrieve(
        RetrieveRequest(
            attempt_id="routing-probe", idempotency_key="", psp_reference="pi_routing_health_probe"
        )
    )


def _probe_adyen(adapter) -> PSPResult:
    # a cancel of a PSP reference that cannot exist: refused (422) without side effects
    return adapter.cancel(
        CancelRequest(
            psp_reference="ROUTINGPROBE0000", idempotency_key=f"routing-probe-{uuid.uuid4().hex}"
        )
    )


PROBES: dict[str, Callable[[Any], PSPResult]] = {"stripe": _probe_stripe, "adyen": _probe_adyen}


def connector_probe(*, connector: Connector) -> bool:
    """One harmless request to the PSP, around the breaker: True when the PSP answered
    without a server error."""
    probe = PROBES.get(connector.connector_type)
    if probe is None:
        return False
    try:
        result = probe(get_adapter(connector_config(connector)))
    except EndpointRefused:
        return False  # logged by connector_endpoint_url; nothing was sent
    except Exception:
        logger.exception("routing: probe of %s raised", connector.public_id)
        return False
    return result.http_status is not None and result.http_status < 500


def connectors_probe_disabled() -> int:
    """Beat task: probes every automatically disabled connector; after enough consecutive
    successful probes it is enabled again. Returns how many were re-enabled."""
    needed = int(_setting("ROUTING_PROBE_SUCCESSES_TO_ENABLE", 2))
    enabled = 0
    for connector in Connector.objects.filter(enabled=False, disabled_reason=AUTO_DISABLED):
        key = f"routing:probe_ok:{connector.public_id}"
        if connector_probe(connector=connector):
            successes = health.client().incr(key)
            health.client().expire(key, 3600)
            if successes >= needed:
                enabled += connector_auto_enable(connector=connector, probes=successes)
                health.client().delete(key)
        else:
            health.client().delete(key)
    return enabled


# --------------------------------------------------------------------------- demo


def routing_seed_demo(
    *, merchant, connectors: list[Connector], actor: Actor | None = None
) -> RoutingProfile:
    """The demo profile over two connectors (the simulator's Stripe and Adyen), active.
    Idempotent: an existing "Demo routing" profile is returned as it is."""
    actor = actor or Actor.system("seed_demo")
    if len(connectors) < 2:
        raise _invalid("The demo profile needs two connectors.", "connectors")
    livemode = connectors[0].livemode
    existing = RoutingProfile.objects.filter(
        merchant=merchant, livemode=livemode, name="Demo routing"
    ).first()
    if existing is not None:
        return existing
    a, b = connectors[0].public_id, connectors[1].public_id
    rules = [
        {
            "name": "Large tickets: cheapest PSP",
            "match": "all",
            "conditions": [{"field": "amount", "op": "gte", "value": 50_000}],
            "strategy": {"type": "least_cost", "connectors": [a, b]},
        },
        {
            "name": "Debit cards: best authorization rate",
            "match": "all",
            "conditions": [{"field": "funding", "op": "in", "value": ["debit", "prepaid"]}],
            "strategy": {
                "type": "success_rate",
                "connectors": [a, b],
                "exploration": 0.1,
                "segment": "brand_currency",
                "window": 100,
                "min_samples": 10,
            },
        },
        {
            "name": "USD: fastest PSP",
            "match": "all",
            "conditions": [{"field": "currency", "op": "eq", "value": "usd"}],
            "strategy": {"type": "lowest_latency", "connectors": [a, b], "exploration": 0.05},
        },
        {
            "name": "Everything else: 80/20 A/B test",
            "match": "all",
            "conditions": [],
            "strategy": {
                "type": "weighted",
                "weights": [{"connector": a, "weight": 80}, {"connector": b, "weight": 20}],
            },
        },
    ]
    return routing_profile_create(
        merchant=merchant,
        livemode=livemode,
        name="Demo routing",
        rules=rules,
        fallback=[a, b],
        actor=actor,
        note="seeded by the demo",
        activate=True,
    )
