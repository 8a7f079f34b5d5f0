"""The public shape of routing profiles and versions (API and admin)."""

from __future__ import annotations

from apps.routing.models import RoutingProfile, RoutingProfileVersion


def _ts(value) -> int | None:
    return int(value.timestamp()) if value else None


def version_representation(version: RoutingProfileVersion, profile: RoutingProfile) -> dict:
    return {
        "object": "routing_profile_version",
        "profile": profile.public_id,
        "version": version.number,
        "active": profile.is_active and profile.active_version_id == version.pk,
        "rules": version.rules,
        "fallback": version.fallback,
        "note": version.note,
        "created_by": version.created_by,
        "created": _ts(version.created_at),
    }


def profile_representation(profile: RoutingProfile, latest: RoutingProfileVersion | None) -> dict:
    active = profile.active_version if profile.is_active else None
    return {
        "id": profile.public_id,
        "object": "routing_profile",
        "name": profile.name,
        "active": profile.is_active,
        "active_version": active.number if active else None,
        "latest_version": latest.number if latest else None,
        "latest": version_representation(latest, profile) if latest else None,
        "activated": _ts(profile.activated_at) if profile.is_active else None,
        "livemode": profile.livemode,
        "created": _ts(profile.created_at),
        "updated": _ts(profile.updated_at),
    }
