"""Writes of the routing app: routing profiles and their versions, failover settings."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.connectors import selectors as connector_selectors
from apps.core.audit import Actor, audit_record, diff
from apps.core.errors import ConflictError, InvalidRequestError
from apps.routing.models import (
    RoutingProfile,
    RoutingProfileVersion,
    RoutingSettings,
)
from apps.routing.rules import RuleError, RuleSet, parse_rule_set

logger = logging.getLogger(__name__)


def _invalid(message: str, param: str, code: str = "parameter_invalid") -> InvalidRequestError:
    return InvalidRequestError(message, code=code, param=param)


def routing_rules_validate(*, merchant_id: int, livemode: bool, rules: Any, fallback: Any) -> dict:
    """Validates a version's rules and fallback; returns the normalized definition."""
    return _rule_set(
        merchant_id=merchant_id, livemode=livemode, rules=rules, fallback=fallback
    ).definition


# --------------------------------------------------------------------------- profiles


def _rule_set(
    *, merchant_id: int, livemode: bool, rules: Any, fallback: Any, require_enabled: bool = True
) -> RuleSet:
    connectors = {
        c.public_id: {"enabled": c.enabled or not require_enabled}
        for c in connector_selectors.connector_list(merchant_id=merchant_id, livemode=livemode)
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
