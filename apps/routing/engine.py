"""The routing engine: the active profile version compiled once per process, and the decision.

Per decision: one Redis round trip (the merchant's routing generation token plus every
connector's breaker state in one MGET), the compiled first-match rules, then the matched rule's
strategy (success rate and latency read cached rolling stats). No database query unless the
generation changed, which happens on activation and on every connector change (see
`apps.routing.cache`): a process never mixes two versions in one decision.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from apps.routing import strategies
from apps.routing.cache import CompiledRouting, compiled_for
from apps.routing.rules import PaymentFacts

if TYPE_CHECKING:
    from apps.connectors.models import Connector

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


def _skip_reason(
    connector: Connector, facts: PaymentFacts, exclude: frozenset[int], snaps: dict
) -> str | None:
    if connector.id in exclude:
        return "already_tried"
    auto_disabled = connector.disabled_reason == "auto_error_rate"
    if not connector.enabled and not auto_disabled:
        return "disabled"
    if facts.currency not in connector.supported_currencies:
        return "currency_unsupported"
    if connector.supported_brands and facts.brand not in connector.supported_brands:
        return "brand_unsupported"
    if connector.supported_countries and facts.issuer_country not in (
        connector.supported_countries
    ):
        return "country_unsupported"
    # from here on the connector would take the payment, and is only out for a while
    # (apps.intents.services.confirm_plan answers 503 rather than 400 for these)
    if not connector.enabled:
        return "disabled_auto"
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
