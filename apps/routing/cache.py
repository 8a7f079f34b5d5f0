"""Routing's process-local cache of compiled routing, and how every process learns it is stale.

Every process keeps the merchants' compiled routing (active profile version, connectors,
failover limits) in memory (`compiled_for`). A change (activation, connector edit, breaker
transition, auto-disable) sets a new generation token in Redis (`routing:gen:<merchant>:<mode>`)
and publishes the merchant on a channel; each process's listener drops its copy at once, and a
process that is not (yet) subscribed compares the token on every decision instead. Connector
changes arrive through `apps.connectors.changes` (registered in RoutingConfig.ready).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
from django.conf import settings
from django.db import transaction

from apps.connectors import selectors as connector_selectors
from apps.core import invalidation
from apps.core.redis_client import checkout_redis
from apps.routing.models import RoutingProfile, RoutingSettings
from apps.routing.rules import RuleSet, compile_stored

if TYPE_CHECKING:
    from apps.connectors.models import Connector

logger = logging.getLogger(__name__)
KEY_TTL_SECONDS = 7 * 24 * 3600


def client() -> redis.Redis:
    # short timeouts and one immediate retry: when Redis is down, routing falls back to the
    # database instead of stalling the checkout
    return checkout_redis(timeout=0.5, retries=1)


def routing_changed(merchant_id: int, livemode: bool) -> None:
    """Invalidates every process's compiled routing for the merchant: now (readers reload,
    possibly the pre-commit state) and again after commit (readers reload the new state)."""
    generation_bump(merchant_id, livemode)
    transaction.on_commit(lambda: generation_bump(merchant_id, livemode))


# --------------------------------------------------------------------------- generations

_local_listeners: list[Callable[[str], None]] = []


def on_invalidate(callback: Callable[[str], None]) -> None:
    """`callback("<merchant>:<mode>")` on a change, `callback("*")` when everything may be
    stale (listener (re)connected or lost)."""
    _local_listeners.append(callback)


def _invalidate_locally(message: str) -> None:
    for callback in _local_listeners:
        callback(message)


def channel() -> str:
    return invalidation.channel("routing")


def generation_key(merchant_id: int, livemode: bool) -> str:
    return f"routing:gen:{merchant_id}:{int(livemode)}"


def generation_bump(merchant_id: int, livemode: bool) -> None:
    message = f"{merchant_id}:{int(livemode)}"
    _invalidate_locally(message)  # this process: before anything else can read the old state
    try:
        pipe = client().pipeline(transaction=False)
        pipe.set(generation_key(merchant_id, livemode), uuid.uuid4().hex, ex=KEY_TTL_SECONDS)
        pipe.publish(channel(), message)
        pipe.execute()
    except redis.RedisError:
        logger.exception("routing: could not bump the generation of merchant %s", merchant_id)


def generation_ensure(merchant_id: int, livemode: bool) -> str:
    key = generation_key(merchant_id, livemode)
    c = client()
    c.set(key, uuid.uuid4().hex, nx=True, ex=KEY_TTL_SECONDS)
    value = c.get(key)
    return value.decode() if value else ""


# one subscriber thread per process for every process-local cache (apps.core.invalidation)
listener = invalidation.listener
listener.register("routing", _invalidate_locally)


# --------------------------------------------------------------------------- compiled routing


@dataclass(frozen=True)
class CompiledRouting:
    generation: str
    profile: dict | None  # {"id", "name", "version", "version_id"}
    rule_set: RuleSet | None
    connectors: tuple[Connector, ...]  # every connector of the merchant in this mode
    by_id: dict[str, Connector]
    limits: tuple[int | None, int | None] = (None, None)  # RoutingSettings: attempts, budget


@dataclass
class _Entry:
    compiled: CompiledRouting
    snaps: dict  # breaker snapshots read with the generation token
    loaded_at: float  # time.monotonic()
    epoch: int  # the invalidation listener's connection epoch at load time


_cache: dict[tuple[int, bool], _Entry] = {}
_versions: dict[int, RuleSet] = {}  # versions are immutable: compiled once per process
_lock = threading.Lock()
_invalidations: dict[tuple[int, bool], int] = {}  # per merchant: how often invalidated
_everything = [0]  # how often everything was invalidated


def cache_clear() -> None:
    with _lock:
        _cache.clear()
        _versions.clear()
        _everything[0] += 1


def _invalidated(message: str) -> None:
    with _lock:
        if message == "*":
            _cache.clear()
            _everything[0] += 1
            return
        merchant, _, mode = message.partition(":")
        try:
            key = (int(merchant), mode == "1")
        except ValueError:
            return
        _cache.pop(key, None)
        _invalidations[key] = _invalidations.get(key, 0) + 1


on_invalidate(_invalidated)


def _max_age() -> float:
    return float(getattr(settings, "ROUTING_CACHE_MAX_AGE_SECONDS", 30))


def _load(merchant_id: int, livemode: bool, generation: str) -> CompiledRouting:
    profile = (
        RoutingProfile.objects.filter(merchant_id=merchant_id, livemode=livemode, is_active=True)
        .select_related("active_version")
        .first()
    )
    connectors = tuple(
        connector_selectors.connector_list(merchant_id=merchant_id, livemode=livemode)
    )
    limits = RoutingSettings.objects.filter(merchant_id=merchant_id).values_list(
        "max_attempts", "time_budget_seconds"
    ).first() or (None, None)
    rule_set, info = None, None
    if profile is not None and profile.active_version is not None:
        version = profile.active_version
        rule_set = _versions.get(version.pk)
        if rule_set is None:
            rule_set = compile_stored(version.rules, version.fallback)
            with _lock:
                if len(_versions) > 1000:
                    _versions.clear()
                _versions[version.pk] = rule_set
        info = {
            "id": profile.public_id,
            "name": profile.name,
            "version": version.number,
            "version_id": version.pk,
        }
    return CompiledRouting(
        generation=generation,
        profile=info,
        rule_set=rule_set,
        connectors=connectors,
        by_id={c.public_id: c for c in connectors},
        limits=tuple(limits),
    )


def compiled_for(merchant_id: int, livemode: bool) -> tuple[CompiledRouting, dict]:
    """The merchant's compiled routing and its connectors' breaker snapshots.

    Fast path, no I/O: the process's copy while the invalidation listener is subscribed (any
    change drops the copy at once; `ROUTING_CACHE_MAX_AGE_SECONDS` bounds it regardless).
    Otherwise one Redis MGET (generation token + breaker states), and the database only when
    the token changed."""
    key = (merchant_id, livemode)
    listener.ensure_started()
    entry = _cache.get(key)
    now = time.monotonic()
    if (
        entry is not None
        and listener.connected
        and entry.epoch == listener.epoch
        and now - entry.loaded_at < _max_age()
    ):
        return entry.compiled, entry.snaps
    # what the copy is valid against, taken before anything is read
    seen = (_invalidations.get(key, 0), _everything[0], listener.epoch)
    compiled = entry.compiled if entry is not None else None
    gen_key = generation_key(merchant_id, livemode)
    ids = [c.public_id for c in compiled.connectors] if compiled else []
    try:
        snaps = connector_selectors.breaker_snapshots(ids, extra_keys=(gen_key,))
        raw = snaps.pop("_extra")[0]
        generation = raw.decode() if raw else generation_ensure(merchant_id, livemode)
    except redis.RedisError:
        logger.exception("routing: Redis unavailable; routing from the database, breakers closed")
        return _load(merchant_id, livemode, ""), {}
    if compiled is None or compiled.generation != generation or not generation:
        # the token is read before the database: a change committed meanwhile changes the
        # token again (on commit), so this copy is replaced at the next decision at the latest
        compiled = _load(merchant_id, livemode, generation)
        try:
            snaps = connector_selectors.breaker_snapshots(
                [c.public_id for c in compiled.connectors]
            )
            snaps.pop("_extra", None)
        except redis.RedisError:
            snaps = {}
    with _lock:
        if seen == (_invalidations.get(key, 0), _everything[0], listener.epoch):
            _cache[key] = _Entry(compiled=compiled, snaps=snaps, loaded_at=now, epoch=seen[2])
    return compiled, snaps
