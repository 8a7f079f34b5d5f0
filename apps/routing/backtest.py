"""Backtest: replay a merchant's recent payments through a (draft) profile version.

For every confirm in the period (the first attempt of each intent's confirm), the version's
rules decide again, offline: every breaker closed, no exploration, success rates and latency
from what the period itself observed per connector (and segment). Per connector the report
puts the predicted share of traffic, the expected fees and the expected authorization rate
next to what actually happened.

Routing reads the intents app's attempt table here, read-only, through the ORM registry: the
one place where routing looks at payments (the decisions it made are in `routing_trace`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.utils import timezone

from apps.connectors import selectors as connector_selectors
from apps.connectors.selectors import (
    SEGMENTS,
    AuthRate,
    estimate_fee_from_schedule,
    segment_values,
)
from apps.routing import cache, engine
from apps.routing.models import RoutingProfileVersion
from apps.routing.rules import PaymentFacts, compile_stored

APPROVED = ("approved", "requires_action")
DECIDED = ("approved", "requires_action", "soft_decline", "hard_decline", "error")


@dataclass
class ConnectorLine:
    connector: str
    name: str
    actual_attempts: int = 0
    actual_share: float = 0.0
    actual_auth_rate: float | None = None
    actual_fees: int = 0
    predicted_payments: int = 0
    predicted_share: float = 0.0
    expected_auth_rate: float | None = None
    expected_fees: float = 0.0


@dataclass
class BacktestReport:
    profile: str
    version: int
    since: str
    payments: int
    currency_note: str
    lines: list[ConnectorLine] = field(default_factory=list)
    no_route: int = 0
    rules_matched: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "version": self.version,
            "since": self.since,
            "payments": self.payments,
            "no_route": self.no_route,
            "currency_note": self.currency_note,
            "rules_matched": self.rules_matched,
            "connectors": [vars(line) for line in self.lines],
        }

    def table(self) -> str:
        head = (
            f"{'connector':<28} {'actual':>8} {'pred.':>8} {'act.auth':>9} "
            f"{'exp.auth':>9} {'act.fees':>10} {'exp.fees':>10}"
        )
        rows = [
            f"Backtest of {self.profile} v{self.version} on {self.payments} payments "
            f"since {self.since} ({self.currency_note})",
            head,
            "-" * len(head),
        ]

        def pct(value):
            return "-" if value is None else f"{value * 100:.1f}%"

        for line in self.lines:
            rows.append(
                f"{line.name[:28]:<28} {pct(line.actual_share):>8} "
                f"{pct(line.predicted_share):>8} {pct(line.actual_auth_rate):>9} "
                f"{pct(line.expected_auth_rate):>9} {line.actual_fees:>10} "
                f"{round(line.expected_fees):>10}"
            )
        if self.no_route:
            rows.append(f"no eligible connector under this version: {self.no_route} payments")
        rows.append(
            "rules matched: " + ", ".join(f"{k}: {v}" for k, v in self.rules_matched.items())
        )
        return "\n".join(rows)


class _Observed:
    """Per-connector (and segment) outcome counts of the period, standing in for Redis."""

    def __init__(self):
        self.counts: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
        self.latencies: dict[str, list[int]] = defaultdict(list)

    def add(self, connector_id: str, facts: dict, outcome: str, latency_ms: int | None):
        if outcome in DECIDED:
            for segment in SEGMENTS:
                key = (connector_id, segment, segment_values(segment, facts))
                self.counts[key][1] += 1
                self.counts[key][0] += outcome in APPROVED
        if latency_ms is not None and outcome != "error":
            self.latencies[connector_id].append(latency_ms)

    def rate(
        self, connector_id: str, facts: dict, segment: str = "connector", min_samples: int = 10
    ) -> float | None:
        for level in [segment, "connector"] if segment != "connector" else ["connector"]:
            ok, n = self.counts.get((connector_id, level, segment_values(level, facts)), (0, 0))
            if n >= min_samples or (level == "connector" and n):
                return ok / n
        return None


def _attempt_rows(merchant_id: int, livemode: bool, since):
    attempt_model = apps.get_model("intents", "PaymentAttempt")
    return list(
        attempt_model.objects.filter(
            intent__merchant_id=merchant_id, intent__livemode=livemode, started_at__gte=since
        )
        .exclude(outcome="pending")
        .order_by("intent_id", "sequence")
        .values(
            "intent_id",
            "intent__public_id",
            "sequence",
            "connector_id",
            "amount",
            "currency",
            "outcome",
            "latency_ms",
            "routing_trace",
            "intent__metadata",
            "intent__payment_method__brand",
            "intent__payment_method__funding",
            "intent__payment_method__bin",
            "intent__payment_method__issuer_country",
            "intent__payment_method__type",
        )
    )


def routing_backtest(*, version: RoutingProfileVersion, days: int = 30) -> BacktestReport:
    profile = version.profile
    since = timezone.now() - timedelta(days=days)
    connectors = list(
        connector_selectors.connector_list(
            merchant_id=profile.merchant_id, livemode=profile.livemode
        )
    )
    by_pk = {c.pk: c for c in connectors}
    rows = _attempt_rows(profile.merchant_id, profile.livemode, since)

    observed = _Observed()
    confirms = []  # one routing decision per confirm: the attempt that started it
    actual = defaultdict(lambda: {"attempts": 0, "approved": 0, "decided": 0, "fees": 0})
    for row in rows:
        connector = by_pk.get(row["connector_id"])
        if connector is None:
            continue
        facts = {
            "brand": row["intent__payment_method__brand"] or "",
            "funding": row["intent__payment_method__funding"] or "",
            "issuer_country": row["intent__payment_method__issuer_country"] or "",
            "currency": row["currency"],
        }
        observed.add(connector.public_id, facts, row["outcome"], row["latency_ms"])
        line = actual[connector.public_id]
        line["attempts"] += 1
        line["decided"] += row["outcome"] in DECIDED
        if row["outcome"] in APPROVED:
            line["approved"] += 1
            line["fees"] += estimate_fee_from_schedule(
                connector.fee_schedule,
                amount=row["amount"],
                currency=row["currency"],
                brand=facts["brand"] or "*",
                region=facts["issuer_country"] or "*",
            )
        if (row["routing_trace"] or {}).get("confirm_attempt", row["sequence"]) == 1:
            confirms.append((row, facts))

    rule_set = compile_stored(version.rules, version.fallback)
    entry = cache.CompiledRouting(
        generation="backtest",
        rule_set=rule_set,
        connectors=tuple(connectors),
        by_id={c.public_id: c for c in connectors},
        profile={
            "id": profile.public_id,
            "name": profile.name,
            "version": version.number,
            "version_id": version.pk,
        },
    )
    predicted = defaultdict(lambda: {"payments": 0, "approvals": 0.0, "fees": 0.0})
    report = BacktestReport(
        profile=profile.public_id,
        version=version.number,
        since=since.date().isoformat(),
        payments=len(confirms),
        currency_note="fees in minor units of each payment's currency",
    )
    stats = _OfflineStats(observed)
    for row, facts in confirms:
        payment = PaymentFacts(
            amount=row["amount"],
            currency=row["currency"],
            brand=facts["brand"],
            funding=facts["funding"],
            bin=row["intent__payment_method__bin"] or "",
            issuer_country=facts["issuer_country"],
            customer_country=(row["intent__metadata"] or {}).get("customer_country", ""),
            payment_method_type=row["intent__payment_method__type"] or "card",
            metadata=row["intent__metadata"] or {},
            intent_id=row["intent__public_id"],
        )
        decision = engine.decide_with(entry, {}, payment, frozenset(), stats=stats)
        rule = decision.details.get("rule")
        label = rule["name"] if rule else "(fallback)"
        report.rules_matched[label] = report.rules_matched.get(label, 0) + 1
        if not decision.candidates:
            report.no_route += 1
            continue
        chosen = decision.candidates[0]
        rate = observed.rate(chosen.public_id, facts)
        line = predicted[chosen.public_id]
        line["payments"] += 1
        expected = rate if rate is not None else 0.0
        line["approvals"] += expected
        line["fees"] += expected * estimate_fee_from_schedule(
            chosen.fee_schedule,
            amount=row["amount"],
            currency=row["currency"],
            brand=facts["brand"] or "*",
            region=facts["issuer_country"] or "*",
        )
        line["rated"] = line.get("rated", False) or rate is not None

    total_attempts = sum(v["attempts"] for v in actual.values()) or 1
    total_predicted = sum(v["payments"] for v in predicted.values()) or 1
    for connector in connectors:
        a, p = actual.get(connector.public_id), predicted.get(connector.public_id)
        if not a and not p:
            continue
        line = ConnectorLine(connector=connector.public_id, name=connector.name)
        if a:
            line.actual_attempts = a["attempts"]
            line.actual_share = round(a["attempts"] / total_attempts, 4)
            line.actual_auth_rate = round(a["approved"] / a["decided"], 4) if a["decided"] else None
            line.actual_fees = a["fees"]
        if p:
            line.predicted_payments = p["payments"]
            line.predicted_share = round(p["payments"] / total_predicted, 4)
            line.expected_auth_rate = (
                round(p["approvals"] / p["payments"], 4) if p.get("rated") else None
            )
            line.expected_fees = round(p["fees"], 1)
        report.lines.append(line)
    return report


class _OfflineStats:
    """The strategies' inputs during a backtest: the period's observed rates, no exploration."""

    def __init__(self, observed: _Observed):
        self.observed = observed

    def auth_rates(self, ids, *, segment, facts, window, min_samples):
        rates = {}
        for cid in ids:
            rate = self.observed.rate(cid, facts, segment, min_samples)
            rates[cid] = AuthRate(rate=0.5 if rate is None else rate, samples=0, level="observed")
        return rates

    def latency_p95(self, ids, *, min_samples):
        out = {}
        for cid in ids:
            values = sorted(self.observed.latencies.get(cid, []))
            out[cid] = (
                values[min(len(values) - 1, int(0.95 * len(values)))]
                if len(values) >= min_samples
                else None
            )
        return out

    @staticmethod
    def explore(entries, share) -> bool:
        return False
