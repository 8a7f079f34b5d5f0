"""The routing engine: the active profile version compiled once per process, and the decision.

Per decision: one Redis round trip (the merchant's routing generation token plus every
connector's breaker state in one MGET), the compiled first-match rules, then the matched rule's
strategy (success rate and latency read cached rolling stats). No database query unless the
generation changed, which happens on activation and on every connector change (see
`apps.routing.health.generation_bump`): a process never mixes two versions in one decision.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from django.conf import settings

from apps.routing import health, strategies
from apps.routing.models import Connector, RoutingProfile, RoutingSettings
from apps.routing.rules import PaymentFacts, RuleSet, compile_stored

logger = logging.getLogger(__name__)
ENGINE = "rules/1"


@dataclass
class RouteDecision:
    """The ordered candidates for one attempt, and why every other connector was left out."""

    candidates: list[Connector]
    skipped: dict[str, str] = field(default_factory=dict)  # connector public id -> reason
    strategy: str = "priority"
    details: dict[str, Any] = field(default_factory=dict)
    scored: list[dict] = field(default_factory=list)

    def trace(self) -> dict:
        candidates = []
        for rank, entry in enumerate(self.scored, start=1):
            connector = entry["connector"]
            candidates.append(
                {
                    "connector": connector.public_id,
                    "name": connector.name,
                    "rank": rank,
                    **{k: v for k, v in entry.items() if k != "connector"},
                }
            )
        if not self.scored:
            candidates = [
                {"connector": c.public_id, "name": c.name, "rank": i + 1}
                for i, c in enumerate(self.candidates)
            ]
        return {
            **self.details,
            "strategy": self.strategy,
            "candidates": candidates,
            "skipped": self.skipped,
        }


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


health.on_invalidate(_invalidated)


def _max_age() -> float:
    return float(getattr(settings, "ROUTING_CACHE_MAX_AGE_SECONDS", 30))


def _load(merchant_id: int, livemode: bool, generation: str) -> CompiledRouting:
    profile = (
        RoutingProfile.objects.filter(merchant_id=merchant_id, livemode=livemode, is_active=True)
        .select_related("active_version")
        .first()
    )
    connectors = tuple(Connector.objects.filter(merchant_id=merchant_id, livemode=livemode))
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
    listener = health.listener
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
    gen_key = health.generation_key(merchant_id, livemode)
    ids = [c.public_id for c in compiled.connectors] if compiled else []
    try:
        snaps = health.breaker_snapshots(ids, extra_keys=(gen_key,))
        raw = snaps.pop("_extra")[0]
        generation = raw.decode() if raw else health.generation_ensure(merchant_id, livemode)
    except redis.RedisError:
        logger.exception("routing: Redis unavailable; routing from the database, breakers closed")
        return _load(merchant_id, livemode, ""), {}
    if compiled is None or compiled.generation != generation or not generation:
        # the token is read before the database: a change committed meanwhile changes the
        # token again (on commit), so this copy is replaced at the next decision at the latest
        compiled = _load(merchant_id, livemode, generation)
        try:
            snaps = health.breaker_snapshots([c.public_id for c in compiled.connectors])
            snaps.pop("_extra", None)
        except redis.RedisError:
            snaps = {}
    with _lock:
        if seen == (_invalidations.get(key, 0), _everything[0], listener.epoch):
            _cache[key] = _Entry(compiled=compiled, snaps=snaps, loaded_at=now, epoch=seen[2])
    return compiled, snaps


def _skip_reason(
    connector: Connector, facts: PaymentFacts, exclude: frozenset[int], snaps: dict
) -> str | None:
    if connector.id in exclude:
        return "already_tried"
    if not connector.enabled:
        return "disabled_auto" if connector.disabled_reason == "auto_error_rate" else "disabled"
    if facts.currency not in connector.supported_currencies:
        return "currency_unsupported"
    if connector.supported_brands and facts.brand not in connector.supported_brands:
        return "brand_unsupported"
    if connector.supported_countries and facts.issuer_country not in (
        connector.supported_countries
    ):
        return "country_unsupported"
    snap = snaps.get(connector.public_id)
    if snap is not None and not snap.allows_calls:
        return snap.skip_reason
    return None


def decide(
    *, merchant_id: int, livemode: bool, facts: PaymentFacts, exclude: frozenset[int] = frozenset()
) -> RouteDecision:
    started = time.perf_counter()
    entry, snaps = compiled_for(merchant_id, livemode)
    decision = decide_with(entry, snaps, facts, exclude)
    decision.details["decided_in_us"] = int((time.perf_counter() - started) * 1_000_000)
    return decision


def decide_with(
    entry: CompiledRouting,
    snaps: dict,
    facts: PaymentFacts,
    exclude: frozenset[int],
    stats=strategies.LiveStats,
) -> RouteDecision:
    """The decision itself, on an already compiled profile (the backtest calls this too)."""
    skipped: dict[str, str] = {}
    reasons: dict[str, str | None] = {}

    def eligible(connector: Connector) -> bool:
        if connector.public_id not in reasons:
            reasons[connector.public_id] = _skip_reason(connector, facts, exclude, snaps)
        reason = reasons[connector.public_id]
        if reason:
            skipped[connector.public_id] = reason
        return reason is None

    details: dict[str, Any] = {"engine": ENGINE}
    if entry.rule_set is None:
        # no active profile: every connector, by its priority
        details.update(profile=None, rule=None)
        scored = [
            {
                "connector": c,
                "score": c.priority,
                "basis": "connector_priority",
                "source": "default",
            }
            for c in entry.connectors
            if eligible(c)
        ]
        return RouteDecision(
            candidates=[e["connector"] for e in scored],
            skipped=skipped,
            strategy="priority",
            details=details,
            scored=scored,
        )

    details["profile"] = entry.profile["id"]
    details["profile_name"] = entry.profile["name"]
    details["profile_version"] = entry.profile["version"]
    rule = entry.rule_set.first_match(facts)
    scored: list[dict] = []
    strategy = "fallback"
    if rule is None:
        details["rule"] = None
    else:
        strategy = rule.strategy.type
        details["rule"] = {"index": rule.index, "name": rule.name}
        listed = [entry.by_id[cid] for cid in rule.strategy.connectors if cid in entry.by_id]
        for cid in rule.strategy.connectors:
            if cid not in entry.by_id:
                skipped[cid] = "connector_missing"
        ranked, extra = strategies.rank(
            rule.strategy,
            [c for c in listed if eligible(c)],
            facts,
            salt=f"{entry.profile['id']}:{rule.index}",
            stats=stats,
        )
        details.update(extra)
        scored = [{**e, "source": "rule"} for e in ranked]
    seen = {e["connector"].public_id for e in scored}
    for cid in entry.rule_set.fallback:
        connector = entry.by_id.get(cid)
        if connector is None:
            skipped[cid] = "connector_missing"
        elif cid not in seen and eligible(connector):
            scored.append({"connector": connector, "source": "fallback"})
            seen.add(cid)
    referenced = set(entry.rule_set.fallback) | (set(rule.strategy.connectors) if rule else set())
    for connector in entry.connectors:
        cid = connector.public_id
        if cid not in seen and cid not in skipped:
            if cid in referenced:
                eligible(connector)
            else:
                skipped[cid] = "not_in_route"
    return RouteDecision(
        candidates=[e["connector"] for e in scored],
        skipped=skipped,
        strategy=strategy,
        details=details,
        scored=scored,
    )
