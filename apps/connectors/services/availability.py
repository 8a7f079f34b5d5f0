"""Whether a connector takes traffic: the ops override of its breaker, its rolling health
(recorded per PSP answer, evaluated against the error-rate threshold), automatic disabling
(never a merchant's last enabled connector), probes of a disabled connector through the gateway,
and re-enabling it after enough successful probes."""

from __future__ import annotations

import contextlib
import logging

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.connectors import health
from apps.connectors.changes import connector_changed
from apps.connectors.models import Connector
from apps.connectors.services._shared import AUTO_DISABLED, _invalid
from apps.core.audit import Actor, audit_record
from apps.psp_adapters.contract import PSPResult

logger = logging.getLogger(__name__)


def _setting(name: str, default):
    return getattr(settings, name, default)


def connector_health_record(
    *, connector: Connector, result: PSPResult, facts: dict, latency_ms: int | None = None
) -> None:
    """Keeps one PSP answer in the connector's rolling health and success rates (one Redis
    round trip) and checks the error rate; never raises. The gateway records authorizations
    itself, with the breaker's count."""
    recorded = health.record(
        connector.public_id, result, facts, result.latency_ms if latency_ms is None else latency_ms
    )
    evaluate_recorded(connector, recorded)


def evaluate_recorded(connector: Connector, recorded: health.Recorded) -> None:
    """For a failure, at most every two seconds, the error rate over the window is checked
    too (auto-disable). Never raises."""
    if recorded.window_calls is None:
        return
    try:
        _auto_disable_if_over(connector, recorded.window_calls, recorded.window_failures or 0)
    except Exception:
        logger.exception("connectors: health evaluation of %s failed", connector.public_id)


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
    connector_changed(connector.merchant_id, connector.livemode)
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
        connector_changed(connector.merchant_id, connector.livemode)
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
        connector_changed(connector.merchant_id, connector.livemode)
    # a fresh start: old errors must not disable it again at once
    health.forget(connector.public_id)
    health.breaker(connector.public_id).reset()
    connector.enabled = True
    connector.disabled_reason = ""
    return True


def connector_probe(*, connector: Connector) -> bool:
    """One harmless request to the PSP through the gateway, around the breaker: True when the
    PSP answered without a server error."""
    from apps.connectors import gateway  # the gateway builds on these services

    result = gateway.probe(connector=connector)
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
