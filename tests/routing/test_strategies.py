"""The engine: conditions select the rule, each strategy ranks as it should, and the decision
says why (trace). Real PostgreSQL and Redis; no PSP is called here."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from apps.connectors import health
from apps.connectors import services as connector_services
from apps.psp_adapters.contract import Outcome, PSPResult
from tests.routing.conftest import first

pytestmark = pytest.mark.django_db


def _rule(connectors, *, conditions=(), strategy="priority", name=None, match="all", **extra):
    return {
        "name": name or f"rule-{uuid.uuid4().hex[:4]}",
        "match": match,
        "conditions": list(conditions),
        "strategy": {"type": strategy, "connectors": [c.public_id for c in connectors], **extra},
    }


def test_without_a_profile_connectors_route_by_priority(make_connector, decide):
    second = make_connector("second", priority=2)
    first_ = make_connector("first", priority=1)
    decision = decide()
    assert [c.public_id for c in decision.candidates] == [first_.public_id, second.public_id]
    assert decision.trace()["profile"] is None


def test_priority_follows_the_rule_then_the_fallback(make_connector, activate, decide):
    a, b, c, unused = (make_connector(n) for n in ("a", "b", "c", "unused"))
    profile = activate([_rule([b, a])], fallback=[c, a])
    decision = decide()
    assert [x.public_id for x in decision.candidates] == [b.public_id, a.public_id, c.public_id]
    trace = decision.trace()
    assert trace["profile"] == profile.public_id
    assert trace["profile_version"] == 1
    assert trace["rule"]["index"] == 0
    assert [x["source"] for x in trace["candidates"]] == ["rule", "rule", "fallback"]
    assert trace["candidates"][0]["score"] == 1
    assert trace["skipped"] == {unused.public_id: "not_in_route"}


CONDITION_CASES = [
    # (condition, payment that matches, payment that does not)
    (
        {"field": "amount", "op": "between", "value": [1000, 5000]},
        {"amount": 1000},
        {"amount": 5001},
    ),
    ({"field": "amount", "op": "gt", "value": 100_000}, {"amount": 100_001}, {"amount": 100_000}),
    ({"field": "currency", "op": "in", "value": ["usd"]}, {"currency": "usd"}, {"currency": "eur"}),
    (
        {"field": "brand", "op": "eq", "value": "mastercard"},
        {"card": {"brand": "mastercard"}},
        {"card": {"brand": "visa"}},
    ),
    (
        {"field": "funding", "op": "in", "value": ["debit", "prepaid"]},
        {"card": {"funding": "debit"}},
        {"card": {"funding": "credit"}},
    ),
    (
        {"field": "bin", "op": "prefix", "value": ["4000", "51"]},
        {"card": {"bin": "510510"}},
        {"card": {"bin": "424242"}},
    ),
    (
        {"field": "bin", "op": "range", "value": ["400000", "400099"]},
        {"card": {"bin": "400056"}},
        {"card": {"bin": "400100"}},
    ),
    (
        {"field": "issuer_country", "op": "not_in", "value": ["US"]},
        {"card": {"issuer_country": "GB"}},
        {"card": {"issuer_country": "US"}},
    ),
    (
        {"field": "customer_country", "op": "eq", "value": "de"},
        {"customer_country": "DE"},
        {"customer_country": "FR"},
    ),
    (
        {"field": "metadata.channel", "op": "eq", "value": "app"},
        {"metadata": {"channel": "app"}},
        {"metadata": {"channel": "web"}},
    ),
    (
        {"field": "metadata.campaign", "op": "exists", "value": True},
        {"metadata": {"campaign": "x"}},
        {"metadata": {}},
    ),
    ({"field": "payment_method_type", "op": "eq", "value": "card"}, {}, None),
]


@pytest.mark.parametrize(("condition", "matching", "other"), CONDITION_CASES)
def test_each_condition_selects_its_rule(
    make_connector, activate, decide, condition, matching, other
):
    special, default = make_connector("special"), make_connector("default")
    activate(
        [
            _rule([special], conditions=[condition], name="special"),
            _rule([default], name="everything else"),
        ]
    )
    assert first(decide(**matching)) == special.public_id
    if other is not None:
        decision = decide(**other)
        assert first(decision) == default.public_id
        assert decision.trace()["rule"]["name"] == "everything else"


def test_any_matches_when_one_condition_holds(make_connector, activate, decide):
    special, default = make_connector("special"), make_connector("default")
    activate(
        [
            _rule(
                [special],
                match="any",
                conditions=[
                    {"field": "currency", "op": "eq", "value": "usd"},
                    {"field": "brand", "op": "eq", "value": "amex"},
                ],
            ),
            _rule([default]),
        ]
    )
    assert first(decide(currency="usd")) == special.public_id
    assert first(decide(card={"brand": "amex"})) == special.public_id
    assert first(decide()) == default.public_id


def test_weighted_split_stays_within_two_percent_and_sticks_per_intent(
    make_connector, activate, decide
):
    a, b, c = make_connector("a"), make_connector("b"), make_connector("c")
    activate(
        [
            {
                "name": "A/B/C",
                "strategy": {
                    "type": "weighted",
                    "weights": [
                        {"connector": a.public_id, "weight": 50},
                        {"connector": b.public_id, "weight": 30},
                        {"connector": c.public_id, "weight": 20},
                    ],
                },
            }
        ]
    )
    counts = Counter()
    for _ in range(10_000):
        decision = decide()
        trace = decision.trace()
        assert trace["variant"] == first(decision)  # the variant is recorded for analysis
        counts[first(decision)] += 1
    for connector, weight in ((a, 0.50), (b, 0.30), (c, 0.20)):
        assert abs(counts[connector.public_id] / 10_000 - weight) <= 0.02, counts
    # sticky: the same intent always gets the same variant
    assert len({first(decide(intent_id="pi_sticky")) for _ in range(20)}) == 1


def test_weighted_split_skips_an_unavailable_variant(make_connector, activate, decide):
    a, b = make_connector("a"), make_connector("b")
    activate(
        [
            {
                "name": "split",
                "strategy": {
                    "type": "weighted",
                    "weights": [
                        {"connector": a.public_id, "weight": 99},
                        {"connector": b.public_id, "weight": 1},
                    ],
                },
            }
        ]
    )
    decision = decide(exclude=frozenset({a.id}))
    assert first(decision) == b.public_id
    assert decision.skipped[a.public_id] == "already_tried"


def test_least_cost_picks_the_cheapest_for_the_amount_and_brand(make_connector, activate, decide):
    # A: 0.25 + 1.4 %, amex 3.5 %; B: 0.10 + 1.6 %: B is cheaper below 75.00, A above
    a = make_connector(
        "a",
        fee_schedule=[
            {"brand": "*", "fixed": 25, "percent_bps": 140},
            {"brand": "amex", "fixed": 25, "percent_bps": 350},
        ],
    )
    b = make_connector("b", fee_schedule=[{"brand": "*", "fixed": 10, "percent_bps": 160}])
    activate([_rule([a, b], strategy="least_cost")])
    small = decide(amount=1000)
    assert first(small) == b.public_id
    assert [c["score"] for c in small.trace()["candidates"]] == [26, 39]
    assert first(decide(amount=100_000)) == a.public_id  # 1425 vs 1610
    assert first(decide(amount=100_000, card={"brand": "amex"})) == b.public_id  # 3525 vs 1610


def test_least_cost_uses_region_and_currency_lines(make_connector, activate, decide):
    a = make_connector(
        "a",
        fee_schedule=[
            {"fixed": 20, "percent_bps": 150},
            {"region": "eea", "fixed": 20, "percent_bps": 20},
        ],
    )
    b = make_connector("b", fee_schedule=[{"fixed": 0, "percent_bps": 100}])
    activate([_rule([a, b], strategy="least_cost")])
    assert first(decide(amount=10_000, card={"issuer_country": "DE"})) == a.public_id  # 40 v 100
    assert first(decide(amount=10_000, card={"issuer_country": "US"})) == b.public_id  # 170 v 100


def _record(connector, approved: bool, facts=None, latency_ms=100):
    result = PSPResult(
        outcome=Outcome.APPROVED if approved else Outcome.SOFT_DECLINE,
        decline_code="" if approved else "do_not_honor",
        http_status=200 if approved else 402,
        latency_ms=latency_ms,
    )
    connector_services.connector_health_record(
        connector=connector,
        result=result,
        facts=facts
        or {"brand": "visa", "funding": "credit", "issuer_country": "US", "currency": "eur"},
    )


def test_success_rate_shifts_away_after_declines_rise_and_back_after_recovery(
    make_connector, activate, decide
):
    a, b = make_connector("a"), make_connector("b")
    window, exploration = 20, 0.2
    activate(
        [
            _rule(
                [a, b],
                strategy="success_rate",
                window=window,
                min_samples=5,
                exploration=exploration,
                segment="brand_currency",
            )
        ]
    )
    a_declines = False

    def run(n):
        chosen = []
        for _ in range(n):
            decision = decide()
            winner = decision.candidates[0]
            chosen.append(winner.public_id)
            _record(winner, approved=not (winner == a and a_declines))
        return chosen

    # healthy: both approve, ties keep the rule's order, so A carries the traffic
    assert Counter(run(60))[a.public_id] > 40
    # A's declines rise: within a bounded number of attempts, traffic moves to B
    a_declines = True
    history = run(60)
    shifted_at = next(
        i for i in range(len(history)) if all(x == b.public_id for x in history[i : i + 10])
    )
    assert shifted_at <= 25, history
    assert Counter(history[-20:])[b.public_id] >= 14
    # A recovers: exploration keeps sampling it, its rate climbs back and traffic returns
    a_declines = False
    history = run(200)
    assert Counter(history[-30:])[a.public_id] >= 18, Counter(history[-30:])
    trace = decide().trace()
    assert trace["strategy"] == "success_rate"
    assert {c["basis"] for c in trace["candidates"]} == {"auth_rate"}
    assert all(c["samples"] >= 5 for c in trace["candidates"])


def test_success_rate_uses_the_payment_segment(make_connector, activate, decide):
    a, b = make_connector("a"), make_connector("b")
    activate(
        [
            _rule(
                [a, b],
                strategy="success_rate",
                window=20,
                min_samples=5,
                exploration=0.0,
                segment="brand",
            )
        ]
    )
    visa, amex = {"brand": "visa", "currency": "eur"}, {"brand": "amex", "currency": "eur"}
    for _ in range(10):  # A is good for visa, bad for amex; B the other way round
        _record(a, True, visa), _record(a, False, amex)
        _record(b, False, visa), _record(b, True, amex)
    assert first(decide(card={"brand": "visa"})) == a.public_id
    decision = decide(card={"brand": "amex"})
    assert first(decision) == b.public_id
    assert decision.trace()["candidates"][0]["level"] == "brand"


def test_lowest_latency_picks_the_fastest_rolling_p95(make_connector, activate, decide):
    a, b = make_connector("a"), make_connector("b")
    activate([_rule([a, b], strategy="lowest_latency", exploration=0.0, min_samples=5)])
    assert first(decide()) == a.public_id  # nothing measured yet: the rule's order
    for i in range(20):
        _record(a, True, latency_ms=300 + i)
        _record(b, True, latency_ms=80 + i)
    decision = decide()
    assert first(decision) == b.public_id
    assert decision.trace()["candidates"][0] == {
        **decision.trace()["candidates"][0],
        "basis": "p95_latency_ms",
        "score": 99,
    }


def test_exploration_sends_a_small_share_to_the_runner_up(make_connector, activate, decide):
    a, b = make_connector("a"), make_connector("b")
    activate([_rule([a, b], strategy="success_rate", exploration=0.1, min_samples=5, window=50)])
    for _ in range(30):
        _record(a, True), _record(b, False)
    picks = Counter(first(decide()) for _ in range(2000))
    assert 0.07 <= picks[b.public_id] / 2000 <= 0.13


def test_ineligible_connectors_are_skipped_with_their_reason(
    make_connector, activate, decide, system_actor
):
    ok = make_connector("ok")
    disabled = make_connector("disabled")
    usd_only = make_connector("usd", supported_currencies=["usd"])
    mc_only = make_connector("mc", supported_brands=["mastercard"])
    gb_only = make_connector("gb", supported_countries=["GB"])
    broken = make_connector("broken")
    forced = make_connector("forced")
    tried = make_connector("tried")
    activate([_rule([ok, disabled, usd_only, mc_only, gb_only, broken, forced, tried])])
    connector_services.connector_update(connector=disabled, actor=system_actor, enabled=False)
    health.breaker(broken.public_id).force(None)
    for _ in range(5):  # five consecutive 5xx: the breaker opens
        health.breaker(broken.public_id).call(
            lambda: PSPResult(outcome=Outcome.ERROR, http_status=503)
        )
    connector_services.connector_breaker_force(connector=forced, mode="open", actor=system_actor)
    decision = decide(exclude=frozenset({tried.id}))
    assert [c.public_id for c in decision.candidates] == [ok.public_id]
    assert decision.skipped == {
        disabled.public_id: "disabled",
        usd_only.public_id: "currency_unsupported",
        mc_only.public_id: "brand_unsupported",
        gb_only.public_id: "country_unsupported",
        broken.public_id: "breaker_open",
        forced.public_id: "breaker_forced_open",
        tried.public_id: "already_tried",
    }


def test_a_profile_change_is_seen_by_the_next_decision(
    make_connector, activate, decide, system_actor
):
    a, b = make_connector("a"), make_connector("b")
    activate([_rule([a, b])])
    assert first(decide()) == a.public_id
    connector_services.connector_update(connector=a, actor=system_actor, enabled=False)
    decision = decide()
    assert first(decision) == b.public_id
    assert decision.skipped[a.public_id] == "disabled"
