"""The audit log: who did what to which object, with before/after of the changed fields."""

from __future__ import annotations

from dataclasses import dataclass

from apps.core.logging import get_request_id
from apps.core.models import AuditLogEntry

# Fields whose values never go into the audit log, whatever the model.
_SECRET_FIELDS = {
    "secret",
    "hashed_key",
    "key_hash",
    "password",
    "credentials",
    "number",
    "cvc",
    "card_number",
    "encrypted_number",
    "webhook_secret",
    "signing_secret",
}


@dataclass(frozen=True)
class Actor:
    type: str  # api_key | staff | system
    id: str  # key display prefix, staff username or task name
    merchant_id: int | None = None
    livemode: bool | None = None

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(type=AuditLogEntry.ActorType.SYSTEM, id=name)

    @classmethod
    def staff(cls, user) -> Actor:
        return cls(type=AuditLogEntry.ActorType.STAFF, id=user.get_username())


def _scrub(changes: dict) -> dict:
    return {
        field: ["[redacted]", "[redacted]"] if field in _SECRET_FIELDS else value
        for field, value in changes.items()
    }


def audit_record(
    *,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: str,
    merchant_id: int | None = None,
    livemode: bool | None = None,
    changes: dict | None = None,
) -> AuditLogEntry:
    return AuditLogEntry.objects.create(
        actor_type=actor.type,
        actor=actor.id[:150],
        merchant_id=merchant_id if merchant_id is not None else actor.merchant_id,
        livemode=livemode if livemode is not None else actor.livemode,
        action=action,
        object_type=object_type,
        object_id=object_id,
        changes=_scrub(changes or {}),
        request_id=get_request_id() or "",
    )


def diff(before: dict, after: dict) -> dict:
    """{"field": [before, after]} for the fields that changed."""
    return {k: [before.get(k), after.get(k)] for k in after if before.get(k) != after.get(k)}
