"""The five strategies. Each ranks a rule's eligible connectors for one payment and says why:
every ranked entry carries a score and the details the decision trace shows."""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from apps.connectors import selectors as connector_selectors
from apps.connectors.selectors import estimate_fee_from_schedule
from apps.routing.rules import PaymentFacts, StrategySpec

if TYPE_CHECKING:
    from apps.connectors.models import Connector

rng = random.Random()  # exploration draws; tests may seed it
BUCKETS = 10_000


def sticky_bucket(intent_id: str, salt: str) -> int:
    """A stable bucket in [0, 10000) per intent: the same intent always gets the same variant."""
    if not intent_id:
        return rng.randrange(BUCKETS)
    digest = hashlib.blake2b(f"{salt}:{intent_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def _facts_dict(facts: PaymentFacts) -> dict:
    return asdict(facts)


class LiveStats:
    """What the data-driven strategies read: rolling Redis stats, and real exploration."""

    auth_rates = staticmethod(connector_selectors.auth_rates)
    latency_p95 = staticmethod(connector_selectors.latency_p95)

    @staticmethod
    def explore(entries: list[dict], share: float) -> bool:
        """With probability `share`, moves a random runner-up to the front."""
        if share <= 0 or len(entries) < 2 or rng.random() >= share:
            return False
        pick = rng.randrange(1, len(entries))
        entries.insert(0, entries.pop(pick))
        return True


def rank(
    spec: StrategySpec,
    eligible: list[Connector],
    facts: PaymentFacts,
    *,
    salt: str,
    stats=LiveStats,
) -> tuple[list[dict], dict[str, Any]]:
    """(entries best first, strategy details for the trace). `eligible` is in the order the
    rule lists the connectors; ties keep that order."""
    details: dict[str, Any] = {}
    order = {cid: i for i, cid in enumerate(spec.connectors)}
    if spec.type == "priority":
        entries = [
            {"connector": c, "score": order[c.public_id] + 1, "basis": "position"} for c in eligible
        ]
        return entries, details

    if spec.type == "weighted":
        weights = dict(zip(spec.connectors, spec.weights, strict=True))
        bucket = sticky_bucket(facts.intent_id, salt)
        variant = _pick(spec.connectors, spec.weights, bucket)
        details.update(bucket=bucket, variant=variant)
        available = [c for c in eligible]
        chosen = None
        if any(c.public_id == variant for c in available):
            chosen = variant
        elif available:
            # the assigned variant cannot take this payment: split the bucket over the others
            ids = [c.public_id for c in available]
            chosen = _pick(ids, [weights[i] for i in ids], bucket)
            details["variant_unavailable"] = True
        entries = sorted(
            (
                {"connector": c, "score": weights[c.public_id], "basis": "weight_percent"}
                for c in available
            ),
            key=lambda e: (
                e["connector"].public_id != chosen,
                -e["score"],
                order[e["connector"].public_id],
            ),
        )
        return entries, details

    if spec.type == "least_cost":
        entries = []
        for c in eligible:
            fee = estimate_fee_from_schedule(
                c.fee_schedule,
                amount=facts.amount,
                currency=facts.currency,
                brand=facts.brand or "*",
                region=facts.issuer_country or "*",
            )
            entries.append({"connector": c, "score": fee, "basis": "fee_minor_units"})
        entries.sort(key=lambda e: (e["score"], order[e["connector"].public_id]))
        return entries, details

    if spec.type == "success_rate":
        rates = stats.auth_rates(
            [c.public_id for c in eligible],
            segment=spec.segment,
            facts=_facts_dict(facts),
            window=spec.window,
            min_samples=spec.min_samples,
        )
        entries = [
            {
                "connector": c,
                "score": round(rates[c.public_id].rate, 4),
                "basis": "auth_rate",
                "samples": rates[c.public_id].samples,
                "level": rates[c.public_id].level,
            }
            for c in eligible
        ]
        entries.sort(key=lambda e: (-e["score"], order[e["connector"].public_id]))
        details["segment"] = spec.segment
        details["explored"] = stats.explore(entries, spec.exploration)
        return entries, details

    if spec.type == "lowest_latency":
        p95 = stats.latency_p95([c.public_id for c in eligible], min_samples=spec.min_samples)
        entries = [
            {"connector": c, "score": p95[c.public_id], "basis": "p95_latency_ms"} for c in eligible
        ]
        # measured connectors by p95; unmeasured after them (exploration gives them traffic)
        entries.sort(
            key=lambda e: (e["score"] is None, e["score"] or 0, order[e["connector"].public_id])
        )
        details["explored"] = stats.explore(entries, spec.exploration)
        return entries, details

    raise ValueError(f"unknown strategy {spec.type!r}")


def _pick(ids, weights, bucket: int) -> str:
    total = sum(weights)
    point = bucket * total / BUCKETS
    running = 0.0
    for cid, weight in zip(ids, weights, strict=True):
        running += weight
        if point < running:
            return cid
    return ids[-1]
