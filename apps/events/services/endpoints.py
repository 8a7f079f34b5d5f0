"""Merchant webhook endpoints: create, update, delete (soft), roll the signing secret (the old
one keeps signing through an overlap), and the beat task that disables an endpoint whose
deliveries have failed for days."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from apps.core.audit import Actor, audit_record
from apps.core.crypto import Ciphertext, decrypt, encrypt
from apps.core.errors import InvalidRequestError
from apps.events import catalog, signing, url_safety
from apps.events.conf import conf
from apps.events.models import WebhookDelivery, WebhookEndpoint
from apps.events.representations import endpoint_representation
from apps.events.services._shared import _lock_endpoint
from apps.events.services.outbox import outbox_record

logger = logging.getLogger(__name__)

SECRET_AAD = b"webhook-endpoint-secret"
D = WebhookDelivery.Status


@dataclass(frozen=True)
class IssuedEndpoint:
    endpoint: WebhookEndpoint
    secret: str  # shown once


def _seal(secret: str) -> Ciphertext:
    return encrypt(secret.encode(), associated_data=SECRET_AAD)


def _open(blob, key_id: str) -> str:
    return decrypt(Ciphertext(key_id=key_id, blob=bytes(blob)), associated_data=SECRET_AAD).decode()


def endpoint_signing_keys(endpoint: WebhookEndpoint, *, now: datetime) -> list[bytes]:
    """The current secret, plus the previous one while a roll's overlap lasts."""
    keys = [signing.secret_key_bytes(_open(endpoint.secret_encrypted, endpoint.secret_key_id))]
    if (
        endpoint.previous_secret_encrypted
        and endpoint.previous_secret_expires_at
        and endpoint.previous_secret_expires_at > now
    ):
        previous = _open(endpoint.previous_secret_encrypted, endpoint.previous_secret_key_id)
        keys.append(signing.secret_key_bytes(previous))
    return keys


def _validate_url(url: str, *, livemode: bool) -> str:
    problem = url_safety.check(url, livemode=livemode)
    if problem is not None:
        raise InvalidRequestError(problem.message, code=problem.code, param="url")
    return url


def _validate_enabled_events(enabled_events) -> list[str]:
    if not isinstance(enabled_events, list) or not enabled_events:
        raise InvalidRequestError(
            "enabled_events must be a non-empty list of event types ('*' for all).",
            code="parameter_invalid",
            param="enabled_events",
        )
    for index, pattern in enumerate(enabled_events):
        if not isinstance(pattern, str) or not catalog.is_valid_pattern(pattern):
            raise InvalidRequestError(
                f"enabled_events[{index}]: {pattern!r} is not a known event type. Use an exact "
                "type such as 'payment_intent.succeeded', a wildcard such as "
                "'payment_intent.*', or '*'.",
                code="event_type_unknown",
                param=f"enabled_events[{index}]",
            )
    return list(dict.fromkeys(enabled_events))  # drop repeats, keep order


def webhook_endpoint_create(
    *,
    merchant,
    livemode: bool,
    url: str,
    enabled_events: list[str],
    actor: Actor,
    description: str = "",
    metadata: dict | None = None,
) -> IssuedEndpoint:
    url = _validate_url(url, livemode=livemode)
    enabled_events = _validate_enabled_events(enabled_events)
    secret = signing.new_signing_secret()
    sealed = _seal(secret)
    with transaction.atomic():
        # serializes endpoint creation per merchant, so the limit holds under races
        type(merchant).objects.select_for_update().filter(pk=merchant.pk).first()
        active = WebhookEndpoint.objects.filter(
            merchant=merchant, livemode=livemode, deleted_at__isnull=True
        ).count()
        if active >= conf("WEBHOOK_ENDPOINTS_MAX_PER_MODE"):
            raise InvalidRequestError(
                f"You can have at most {conf('WEBHOOK_ENDPOINTS_MAX_PER_MODE')} webhook "
                "endpoints in each mode.",
                code="webhook_endpoint_limit_reached",
            )
        endpoint = WebhookEndpoint.objects.create(
            merchant=merchant,
            livemode=livemode,
            url=url,
            description=description,
            enabled_events=enabled_events,
            metadata=metadata or {},
            secret_encrypted=sealed.blob,
            secret_key_id=sealed.key_id,
        )
        audit_record(
            actor=actor,
            action="webhook_endpoint.created",
            object_type="webhook_endpoint",
            object_id=endpoint.public_id,
            merchant_id=merchant.id,
            livemode=livemode,
            changes={"url": [None, url], "enabled_events": [None, enabled_events]},
        )
    return IssuedEndpoint(endpoint=endpoint, secret=secret)


def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    actor: Actor,
    url: str | None = None,
    enabled_events: list[str] | None = None,
    description: str | None = None,
    metadata: dict | None = None,
    disabled: bool | None = None,
) -> WebhookEndpoint:
    if url is not None:
        _validate_url(url, livemode=endpoint.livemode)
    if enabled_events is not None:
        enabled_events = _validate_enabled_events(enabled_events)
    with transaction.atomic():
        endpoint = _lock_endpoint(endpoint.pk)
        before = {
            "url": endpoint.url,
            "enabled_events": endpoint.enabled_events,
            "description": endpoint.description,
            "status": endpoint.status,
        }
        if url is not None:
            endpoint.url = url
        if enabled_events is not None:
            endpoint.enabled_events = enabled_events
        if description is not None:
            endpoint.description = description
        if metadata is not None:
            endpoint.metadata = {**endpoint.metadata, **metadata}
            endpoint.metadata = {k: v for k, v in endpoint.metadata.items() if v != ""}
        if disabled is True and endpoint.status == WebhookEndpoint.Status.ENABLED:
            endpoint.status = WebhookEndpoint.Status.DISABLED
            endpoint.disabled_reason = "disabled by the merchant"
        elif disabled is False and endpoint.status == WebhookEndpoint.Status.DISABLED:
            endpoint.status = WebhookEndpoint.Status.ENABLED
            endpoint.disabled_reason = ""
            endpoint.failing_since = None
        endpoint.save()
        after = {
            "url": endpoint.url,
            "enabled_events": endpoint.enabled_events,
            "description": endpoint.description,
            "status": endpoint.status,
        }
        changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
        if changes:
            audit_record(
                actor=actor,
                action="webhook_endpoint.updated",
                object_type="webhook_endpoint",
                object_id=endpoint.public_id,
                merchant_id=endpoint.merchant_id,
                livemode=endpoint.livemode,
                changes=changes,
            )
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, actor: Actor) -> WebhookEndpoint:
    """Soft delete: the endpoint stops receiving, its delivery history stays for ops."""
    with transaction.atomic():
        endpoint = _lock_endpoint(endpoint.pk)
        endpoint.deleted_at = timezone.now()
        endpoint.status = WebhookEndpoint.Status.DISABLED
        endpoint.disabled_reason = "deleted"
        endpoint.save()
        WebhookDelivery.objects.filter(endpoint=endpoint, status=D.PENDING).update(
            status=D.CANCELED, next_attempt_at=None
        )
        audit_record(
            actor=actor,
            action="webhook_endpoint.deleted",
            object_type="webhook_endpoint",
            object_id=endpoint.public_id,
            merchant_id=endpoint.merchant_id,
            livemode=endpoint.livemode,
        )
    return endpoint


def webhook_endpoint_roll_secret(
    *, endpoint: WebhookEndpoint, actor: Actor, expires_in_seconds: int | None = None
) -> IssuedEndpoint:
    """A new secret signs from now on; the old one also signs for `expires_in_seconds` (default
    24 h, 0 = stops at once), so receivers can switch without missing a webhook."""
    if expires_in_seconds is None:
        expires_in_seconds = conf("WEBHOOK_SECRET_ROLL_DEFAULT_SECONDS")
    maximum = conf("WEBHOOK_SECRET_ROLL_MAX_SECONDS")
    if (
        isinstance(expires_in_seconds, bool)
        or not isinstance(expires_in_seconds, int)
        or not 0 <= expires_in_seconds <= maximum
    ):
        raise InvalidRequestError(
            f"expires_in must be a whole number of seconds between 0 and {maximum}.",
            code="parameter_invalid",
            param="expires_in",
        )
    secret = signing.new_signing_secret()
    sealed = _seal(secret)
    with transaction.atomic():
        endpoint = _lock_endpoint(endpoint.pk)
        if expires_in_seconds:
            endpoint.previous_secret_encrypted = endpoint.secret_encrypted
            endpoint.previous_secret_key_id = endpoint.secret_key_id
            endpoint.previous_secret_expires_at = timezone.now() + timedelta(
                seconds=expires_in_seconds
            )
        else:
            endpoint.previous_secret_encrypted = None
            endpoint.previous_secret_key_id = ""
            endpoint.previous_secret_expires_at = None
        endpoint.secret_encrypted = sealed.blob
        endpoint.secret_key_id = sealed.key_id
        endpoint.save()
        audit_record(
            actor=actor,
            action="webhook_endpoint.secret_rolled",
            object_type="webhook_endpoint",
            object_id=endpoint.public_id,
            merchant_id=endpoint.merchant_id,
            livemode=endpoint.livemode,
            changes={"previous_secret_expires_in": [None, expires_in_seconds]},
        )
    return IssuedEndpoint(endpoint=endpoint, secret=secret)


def webhook_endpoints_disable_failing(*, now: datetime | None = None) -> int:
    """Beat task: an endpoint that has failed every delivery for days is disabled, its pending
    deliveries are dead-lettered (replayable once it is fixed), and the merchant gets a
    `webhook_endpoint.disabled` event (on its other endpoints, and in /v1/events)."""
    now = now or timezone.now()
    threshold = now - timedelta(seconds=conf("WEBHOOK_ENDPOINT_DISABLE_AFTER_SECONDS"))
    candidates = list(
        WebhookEndpoint.objects.filter(
            status=WebhookEndpoint.Status.ENABLED,
            deleted_at__isnull=True,
            failing_since__lte=threshold,
        ).values_list("pk", flat=True)
    )
    disabled = 0
    for endpoint_id in candidates:
        with transaction.atomic():
            endpoint = _lock_endpoint(endpoint_id)
            if endpoint.status != WebhookEndpoint.Status.ENABLED or not (
                endpoint.failing_since and endpoint.failing_since <= threshold
            ):
                continue
            days = (now - endpoint.failing_since).total_seconds() / 86400
            previous = {"status": endpoint.status}
            endpoint.status = WebhookEndpoint.Status.DISABLED
            endpoint.disabled_reason = f"every delivery failed for {days:.1f} days"
            endpoint.save()
            WebhookDelivery.objects.filter(endpoint=endpoint, status=D.PENDING).update(
                status=D.DEAD,
                dead_at=now,
                next_attempt_at=None,
                last_error="endpoint disabled after failing for days",
            )
            outbox_record(
                merchant_id=endpoint.merchant_id,
                livemode=endpoint.livemode,
                object_type="webhook_endpoint",
                object_id=endpoint.public_id,
                event_type="webhook_endpoint.disabled",
                payload=endpoint_representation(endpoint),
                previous_attributes=previous,
            )
            audit_record(
                actor=Actor.system("webhook_endpoint_disabler"),
                action="webhook_endpoint.disabled",
                object_type="webhook_endpoint",
                object_id=endpoint.public_id,
                merchant_id=endpoint.merchant_id,
                livemode=endpoint.livemode,
                changes={"status": ["enabled", "disabled"]},
            )
            disabled += 1
            logger.warning(
                "webhook endpoint %s disabled: %s", endpoint.public_id, endpoint.disabled_reason
            )
    return disabled
