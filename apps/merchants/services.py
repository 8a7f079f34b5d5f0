from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from apps.core.audit import Actor, audit_record, diff
from apps.core.errors import ConflictError, InvalidRequestError
from apps.merchants.models import ApiKey, Merchant

KEY_RANDOM_BYTES = 24  # 32 url-safe characters: ~192 bits
MAX_ROLL_GRACE_SECONDS = 7 * 24 * 3600


def hash_api_key(raw_key: str) -> str:
    # keys are long random strings, so a fast hash is safe (no dictionary to attack) and keeps
    # authentication at one indexed lookup
    return hashlib.sha256(raw_key.encode()).hexdigest()


def key_prefix(kind: str, livemode: bool) -> str:
    return f"{'sk' if kind == ApiKey.Kind.SECRET else 'pk'}_{'live' if livemode else 'test'}_"


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    raw_key: str  # shown once, to the caller that created it


def _new_raw_key(kind: str, livemode: bool) -> str:
    body = secrets.token_urlsafe(KEY_RANDOM_BYTES).replace("-", "x").replace("_", "y")
    return key_prefix(kind, livemode) + body


def merchant_create(*, name: str, email: str = "", country: str = "", actor: Actor) -> Merchant:
    with transaction.atomic():
        merchant = Merchant.objects.create(name=name, email=email, country=country)
        audit_record(
            actor=actor,
            action="merchant.created",
            object_type="merchant",
            object_id=merchant.public_id,
            merchant_id=merchant.id,
            changes={"name": [None, name]},
        )
    return merchant


_UPDATABLE = ("name", "email", "country", "metadata")


def merchant_update(*, merchant: Merchant, actor: Actor, **changes) -> Merchant:
    unknown = set(changes) - set(_UPDATABLE)
    if unknown:
        raise InvalidRequestError(
            f"Unknown field {sorted(unknown)[0]!r}.",
            code="parameter_unknown",
            param=sorted(unknown)[0],
        )
    with transaction.atomic():
        merchant = Merchant.objects.select_for_update(of=("self",)).get(pk=merchant.pk)
        before = {f: getattr(merchant, f) for f in _UPDATABLE}
        if "metadata" in changes:
            # Stripe semantics: keys are merged; an empty-string value removes the key
            merged = dict(merchant.metadata)
            for k, v in changes.pop("metadata").items():
                if v == "":
                    merged.pop(k, None)
                else:
                    merged[k] = v
            merchant.metadata = merged
        for field, value in changes.items():
            setattr(merchant, field, value)
        merchant.save()
        after = {f: getattr(merchant, f) for f in _UPDATABLE}
        audit_record(
            actor=actor,
            action="merchant.updated",
            object_type="merchant",
            object_id=merchant.public_id,
            merchant_id=merchant.id,
            changes=diff(before, after),
        )
    return merchant


def api_key_create(
    *, merchant: Merchant, kind: str, livemode: bool, actor: Actor, name: str = ""
) -> IssuedKey:
    if kind not in ApiKey.Kind.values:
        raise InvalidRequestError(
            "type must be 'secret' or 'publishable'.", code="parameter_invalid", param="type"
        )
    raw = _new_raw_key(kind, livemode)
    with transaction.atomic():
        api_key = ApiKey.objects.create(
            merchant=merchant,
            kind=kind,
            livemode=livemode,
            key_hash=hash_api_key(raw),
            display=f"{raw[:12]}…{raw[-4:]}",
            name=name,
        )
        audit_record(
            actor=actor,
            action="api_key.created",
            object_type="api_key",
            object_id=api_key.public_id,
            merchant_id=merchant.id,
            livemode=livemode,
            changes={"display": [None, api_key.display], "kind": [None, kind]},
        )
    return IssuedKey(api_key=api_key, raw_key=raw)


def api_key_roll(*, api_key: ApiKey, grace_seconds: int, actor: Actor) -> IssuedKey:
    """Issues a replacement key; the old one keeps working for `grace_seconds` (0 = now)."""
    if (
        isinstance(grace_seconds, bool)
        or not isinstance(grace_seconds, int)
        or not (0 <= grace_seconds <= MAX_ROLL_GRACE_SECONDS)
    ):
        raise InvalidRequestError(
            f"expires_in must be an integer number of seconds from 0 to {MAX_ROLL_GRACE_SECONDS}.",
            code="parameter_invalid",
            param="expires_in",
        )
    with transaction.atomic():
        old = ApiKey.objects.select_for_update(of=("self",)).get(pk=api_key.pk)
        if old.revoked_at or old.rolled_to_id:
            raise ConflictError("This key was already revoked or rolled.", code="api_key_inactive")
        issued = api_key_create(
            merchant=old.merchant, kind=old.kind, livemode=old.livemode, actor=actor, name=old.name
        )
        old.rolled_to = issued.api_key
        old.expires_at = timezone.now() + timedelta(seconds=grace_seconds)
        old.save(update_fields=["rolled_to", "expires_at"])
        audit_record(
            actor=actor,
            action="api_key.rolled",
            object_type="api_key",
            object_id=old.public_id,
            merchant_id=old.merchant_id,
            livemode=old.livemode,
            changes={
                "expires_at": [None, old.expires_at.isoformat()],
                "rolled_to": [None, issued.api_key.public_id],
            },
        )
    return issued


def api_key_revoke(*, api_key: ApiKey, actor: Actor) -> ApiKey:
    with transaction.atomic():
        key = ApiKey.objects.select_for_update(of=("self",)).get(pk=api_key.pk)
        if key.revoked_at is None:
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at"])
            audit_record(
                actor=actor,
                action="api_key.revoked",
                object_type="api_key",
                object_id=key.public_id,
                merchant_id=key.merchant_id,
                livemode=key.livemode,
                changes={"revoked_at": [None, key.revoked_at.isoformat()]},
            )
    return key
