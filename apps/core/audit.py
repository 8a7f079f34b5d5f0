"""The audit log: who did what to which object, with before/after of the changed fields."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.utils import timezone

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


def audit_record(**fields) -> AuditLogEntry:
    """One audit row, written now (inside the change's transaction). `fields`: as
    `audit_entry`."""
    entry = audit_entry(**fields)
    entry.save(force_insert=True)
    return entry


def audit_record_all(entries: list[AuditLogEntry]) -> None:
    """Several audit rows of one transaction (`audit_entry`), in one statement."""
    AuditLogEntry.objects.bulk_create(entries)


def audit_insert_statement(entries: list[AuditLogEntry], *, when: str) -> tuple[str, list]:
    """`audit_record_all` as (sql, params), for a caller that writes the rows inside its own
    single statement, as a data-modifying CTE written only if the relation `when` yields a
    row."""
    columns = (
        "created_at, actor_type, actor, merchant_id, livemode, action, object_type, "
        "object_id, changes, request_id"
    )
    row = "(%s::timestamptz, %s, %s, %s::bigint, %s::boolean, %s, %s, %s, %s::jsonb, %s)"
    params = []
    now = timezone.now()
    for entry in entries:
        params += [
            entry.created_at or now,
            entry.actor_type,
            entry.actor,
            entry.merchant_id,
            entry.livemode,
            entry.action,
            entry.object_type,
            entry.object_id,
            json.dumps(entry.changes),
            entry.request_id,
        ]
    sql = f"""
INSERT INTO {AuditLogEntry._meta.db_table} ({columns})
SELECT v.* FROM (VALUES {", ".join([row] * len(entries))}) AS v ({columns}), {when}"""
    return sql, params


def audit_entry(
    *,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: str,
    merchant_id: int | None = None,
    livemode: bool | None = None,
    changes: dict | None = None,
) -> AuditLogEntry:
    """An audit row, not written yet: `audit_record_all` writes several at once."""
    return AuditLogEntry(
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
