"""Routing benchmark: the decision for a 50-rule profile, and the cost of one failover.

Scenarios
- decision: `route_for_payment` in process for a profile of 50 rules (every strategy), the
  payment matching the last rule (worst case: all 50 evaluated) and a mix matching anywhere.
  Includes the one Redis round trip per decision (generation token + breaker states).
  Target p99 < 1 ms. Also reported: the first decision after an activation (recompile).
- failover: confirms through the real services, adapters and PSP simulator, connector A in a
  503 outage (nothing processed, breaker kept closed so every confirm fails over) vs. the same
  confirms going straight to B. Failover cost per confirm = (confirm time - PSP time of A and
  B) - median(direct confirm time - PSP time of B): what the failed attempt adds beyond A's
  own time. Target p95 < 5 ms.

Before each scenario: a PostgreSQL CHECKPOINT, then a bounded wait for an idle machine (the
same as the webhooks bench; the load average at each start is in the results).

Own database (default `payments_platform_routing_bench`, created and migrated on first use;
override with ROUTING_BENCH_DATABASE_URL), own Redis database (ROUTING_BENCH_REDIS_URL,
default db 12), its own simulator process (tests/support/simulator.py).

    .venv/bin/python bench/routing_bench.py [--decisions 20000] [--confirms 200]

Prints a table and writes bench/results/routing.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ["DATABASE_URL"] = os.environ.get(
    "ROUTING_BENCH_DATABASE_URL",
    "postgres://postgres@127.0.0.1:5432/payments_platform_routing_bench",
)
os.environ["REDIS_URL"] = os.environ.get("ROUTING_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
os.environ["CELERY_BROKER_URL"] = os.environ["REDIS_URL"]
os.environ["DJANGO_SETTINGS_MODULE"] = "payments_platform.settings.base"
os.environ.setdefault("LOG_LEVEL", "ERROR")

import django  # noqa: E402
import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

TARGETS = {"decision_last_rule": 1.0, "decision_mixed": 1.0, "failover": 5.0}
STRIPE_CREDENTIALS = {"api_key": "sk_test_simulator_bench", "webhook_secret": "whsec_bench"}
ADYEN_CREDENTIALS = {
    "api_key": "AQE_simulator_adyen",
    "merchant_account": "BenchECOM",
    "hmac_key": "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056",
}


def ensure_database() -> None:
    from django.conf import settings

    params = settings.DATABASES["default"]
    with psycopg.connect(
        host=params.get("HOST") or "127.0.0.1",
        port=params.get("PORT") or 5432,
        user=params.get("USER") or "postgres",
        password=params.get("PASSWORD") or None,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        name = params["NAME"]
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def pct(values: list[float], p: float) -> float:
    data = sorted(values)
    if not data:
        return 0.0
    k = (len(data) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(data) - 1)
    return round(data[lo] + (data[hi] - data[lo]) * (k - lo), 3)


def _merchant(name: str):
    from apps.core.audit import Actor
    from apps.merchants import services as merchant_services

    return merchant_services.merchant_create(
        name=f"{name} {uuid.uuid4().hex[:6]}",
        email="bench@example.com",
        actor=Actor.system("routing_bench"),
    )


# --------------------------------------------------------------------------- decision


def fifty_rules(ids: list[str]) -> list[dict]:
    """49 specific rules (distinct metadata segments, several condition kinds, every strategy)
    and a catch-all weighted split."""
    a, b, c, d = ids
    strategies = [
        {"type": "priority", "connectors": [a, b, c]},
        {"type": "least_cost", "connectors": [a, b, c, d]},
        {"type": "success_rate", "connectors": [a, b, c], "exploration": 0.05},
        {"type": "lowest_latency", "connectors": [b, c, d], "exploration": 0.05},
        {
            "type": "weighted",
            "weights": [{"connector": a, "weight": 60}, {"connector": d, "weight": 40}],
        },
    ]
    rules = []
    for i in range(49):
        rules.append(
            {
                "name": f"segment {i}",
                "match": "all",
                "conditions": [
                    {"field": "currency", "op": "in", "value": ["eur", "usd", "gbp"]},
                    {"field": "amount", "op": "between", "value": [100, 5_000_000]},
                    {"field": "brand", "op": "in", "value": ["visa", "mastercard", "amex"]},
                    {"field": "bin", "op": "prefix", "value": ["4", "5", "3"]},
                    {"field": "metadata.segment", "op": "eq", "value": f"s{i}"},
                ],
                "strategy": strategies[i % len(strategies)],
            }
        )
    rules.append(
        {
            "name": "everything else",
            "conditions": [],
            "strategy": {
                "type": "weighted",
                "weights": [
                    {"connector": a, "weight": 25},
                    {"connector": b, "weight": 25},
                    {"connector": c, "weight": 25},
                    {"connector": d, "weight": 25},
                ],
            },
        }
    )
    return rules


def bench_decision(decisions: int) -> list[dict]:
    from apps.connectors import services as connector_services
    from apps.core.audit import Actor
    from apps.psp_adapters.contract import Outcome, PSPResult
    from apps.routing import selectors, services

    actor = Actor.system("routing_bench")
    merchant = _merchant("Routing decision bench")
    connectors = [
        connector_services.connector_create(
            merchant=merchant,
            livemode=False,
            name=f"psp-{i}",
            connector_type="stripe",
            endpoint="simulator",  # never called
            credentials=STRIPE_CREDENTIALS,
            supported_currencies=["eur", "usd", "gbp"],
            actor=actor,
            fee_schedule=[{"fixed": 10 + 5 * i, "percent_bps": 150 - 10 * i}],
        )
        for i in range(4)
    ]
    ids = [c.public_id for c in connectors]
    for connector in connectors:  # some rolling history for the data-driven strategies
        for n in range(60):
            connector_services.connector_health_record(
                connector=connector,
                result=PSPResult(
                    outcome=Outcome.APPROVED if n % 7 else Outcome.SOFT_DECLINE,
                    http_status=200,
                    latency_ms=80 + n % 40,
                ),
                facts={
                    "brand": "visa",
                    "funding": "credit",
                    "issuer_country": "US",
                    "currency": "eur",
                },
            )
    profile = services.routing_profile_create(
        merchant=merchant,
        livemode=False,
        name="fifty rules",
        rules=fifty_rules(ids),
        fallback=ids,
        actor=actor,
        activate=True,
    )
    card = {"brand": "visa", "funding": "credit", "bin": "424242", "issuer_country": "US"}

    cpu: list[float] = []

    def decide(metadata: dict) -> float:
        intent_id = f"pi_{uuid.uuid4().hex}"
        cpu_started = time.thread_time_ns()
        started = time.perf_counter()
        decision = selectors.route_for_payment(
            merchant_id=merchant.id,
            livemode=False,
            currency="eur",
            card_facts=card,
            amount=2500,
            intent_id=intent_id,
            metadata=metadata,
        )
        elapsed = (time.perf_counter() - started) * 1000
        cpu.append((time.thread_time_ns() - cpu_started) / 1e6)
        assert decision.candidates
        return elapsed

    # first decision after an activation: the compiled version is rebuilt
    cold = []
    for _ in range(20):
        services.routing_profile_activate(profile=profile, actor=actor)
        cold.append(decide({}))
    for _ in range(500):  # warm-up
        decide({})
    results = []
    for scenario, title, metadata_for in (
        ("decision_last_rule", "decision, 50 rules, last matches", lambda i: {}),
        ("decision_mixed", "decision, 50 rules, mixed", lambda i: {"segment": f"s{i % 60}"}),
    ):
        cpu.clear()
        samples = [decide(metadata_for(i)) for i in range(decisions)]
        p99 = pct(samples, 99)
        results.append(
            {
                "scenario": scenario,
                "title": title,
                "decisions": decisions,
                "p50_ms": pct(samples, 50),
                "p95_ms": pct(samples, 95),
                "p99_ms": p99,
                "max_ms": round(max(samples), 3),
                "mean_ms": round(statistics.fmean(samples), 3),
                "cpu_p50_ms": pct(cpu, 50),
                "cpu_p99_ms": pct(cpu, 99),
                "target": f"p99 < {TARGETS[scenario]} ms",
                "verdict": "PASS" if p99 < TARGETS[scenario] else "FAIL",
            }
        )
    results.append(
        {
            "scenario": "decision_after_activation",
            "title": "first decision after activation",
            "decisions": len(cold),
            "p50_ms": pct(cold, 50),
            "p95_ms": pct(cold, 95),
            "max_ms": round(max(cold), 3),
            "target": "(informative)",
            "verdict": "",
        }
    )
    return results


# --------------------------------------------------------------------------- failover


class _TimedAdapters:
    """Wraps the adapters the confirm path uses and records each authorize call's duration."""

    def __init__(self):
        self.local = threading.local()

    def calls(self) -> list[float]:
        if not hasattr(self.local, "calls"):
            self.local.calls = []
        return self.local.calls

    def spans(self) -> list[tuple[float, float]]:
        """(start, end) perf_counter seconds of each authorize call."""
        if not hasattr(self.local, "spans"):
            self.local.spans = []
        return self.local.spans

    def routing(self) -> list[float]:
        if not hasattr(self.local, "routing"):
            self.local.routing = []
        return self.local.routing

    def install_routing_timers(self):
        """Times what the confirm path spends in routing code (decisions, limits, breaker and
        health bookkeeping; the PSP call inside the breaker is subtracted)."""
        from apps.connectors import gateway
        from apps.routing import selectors

        timer = self

        def timed(module, name, psp_inside=False):
            real = getattr(module, name)

            def wrapper(*args, **kwargs):
                psp_before = sum(timer.calls())
                started = time.perf_counter()
                try:
                    return real(*args, **kwargs)
                finally:
                    spent = (time.perf_counter() - started) * 1000
                    if psp_inside:
                        spent -= sum(timer.calls()) - psp_before
                    timer.routing().append(spent)

            setattr(module, name, wrapper)

        timed(selectors, "route_for_payment")
        timed(selectors, "confirm_limits")
        timed(gateway, "authorize", psp_inside=True)

    def install(self):
        from apps.connectors import gateway

        real = gateway.get_adapter
        timer = self

        class Timed:
            def __init__(self, adapter):
                self.adapter = adapter

            def authorize(self, request):
                started = time.perf_counter()
                try:
                    return self.adapter.authorize(request)
                finally:
                    ended = time.perf_counter()
                    timer.calls().append((ended - started) * 1000)
                    timer.spans().append((started, ended))

            def __getattr__(self, name):
                return getattr(self.adapter, name)

        gateway.get_adapter = lambda config: Timed(real(config))


def bench_failover(confirms: int, sim_url: str) -> list[dict]:
    import requests
    from django.conf import settings
    from django.db import connection

    from apps.connectors import services as connector_services
    from apps.core.audit import Actor
    from apps.intents import services as intent_services
    from apps.routing import services
    from apps.vault import services as vault_services

    settings.SIMULATOR_URL = sim_url  # this bench's own simulator: the platform's, here
    # every confirm must really fail over: keep A's breaker closed and A enabled
    settings.ROUTING_BREAKER_FAIL_MAX = 10**9
    settings.ROUTING_AUTO_DISABLE_MIN_CALLS = 10**9
    actor = Actor.system("routing_bench")
    timer = _TimedAdapters()
    timer.install()
    timer.install_routing_timers()

    def setup(order: str):
        merchant = _merchant(f"Failover bench {order}")
        suffix = uuid.uuid4().hex[:8]
        a = connector_services.connector_create(
            merchant=merchant,
            livemode=False,
            name=f"stripe-{suffix}",
            connector_type="stripe",
            endpoint="simulator",
            simulator_account=f"stripe-{suffix}",
            credentials=STRIPE_CREDENTIALS,
            supported_currencies=["eur"],
            actor=actor,
            priority=1,
        )
        b = connector_services.connector_create(
            merchant=merchant,
            livemode=False,
            name=f"adyen-{suffix}",
            connector_type="adyen",
            endpoint="simulator",
            simulator_account=f"adyen-{suffix}",
            credentials=ADYEN_CREDENTIALS,
            supported_currencies=["eur"],
            actor=actor,
            priority=2,
        )
        first, second = (a, b) if order == "failover" else (b, a)
        services.routing_profile_create(
            merchant=merchant,
            livemode=False,
            name=order,
            fallback=[],
            actor=actor,
            activate=True,
            rules=[
                {
                    "name": "all",
                    "strategy": {
                        "type": "priority",
                        "connectors": [first.public_id, second.public_id],
                    },
                }
            ],
        )
        requests.put(
            f"{sim_url}/_sim/connectors/stripe-{suffix}/faults", json={"outage": True}, timeout=5
        ).raise_for_status()
        return merchant

    def confirm_once(merchant) -> tuple[float, float, int]:
        method = vault_services.payment_method_create(
            merchant=merchant,
            livemode=False,
            actor=actor,
            number="4242424242424242",
            exp_month=12,
            exp_year=2034,
            cvc="123",
        )
        intent = intent_services.intent_create(
            merchant=merchant,
            livemode=False,
            amount=2000,
            currency="eur",
            actor=actor,
            payment_method=method.public_id,
        )
        timer.calls().clear()
        timer.spans().clear()
        timer.routing().clear()
        statements = [0]

        def count(execute, sql_, params, many, context):
            statements[0] += 1
            return execute(sql_, params, many, context)

        with connection.execute_wrapper(count):
            cpu_started = time.thread_time_ns()
            started = time.perf_counter()
            intent = intent_services.intent_confirm(intent=intent, actor=actor)
            total = (time.perf_counter() - started) * 1000
            cpu_ms = (time.thread_time_ns() - cpu_started) / 1e6
        assert intent.status == "succeeded", intent.status
        sql_counts.setdefault(merchant.pk, []).append(statements[0])
        cpu_times.setdefault(merchant.pk, []).append(cpu_ms)
        routing_times.setdefault(merchant.pk, []).append(sum(timer.routing()))
        spans = timer.spans()
        if len(spans) == 2:  # the failover gap: from A's answer to B's request
            gaps.append((spans[1][0] - spans[0][1]) * 1000)
        return total, sum(timer.calls()), len(timer.calls())

    sql_counts: dict[int, list[int]] = {}
    gaps: list[float] = []
    cpu_times: dict[int, list[float]] = {}
    routing_times: dict[int, list[float]] = {}
    direct_merchant, failover_merchant = setup("direct"), setup("failover")
    for _ in range(20):  # warm-up: sessions, caches
        confirm_once(direct_merchant)
        confirm_once(failover_merchant)
    # as gunicorn.conf.py does in production after a worker starts: long-lived start-up objects
    # out of the garbage collector's full passes, which otherwise land in random confirms
    gc.freeze()
    gaps.clear()
    direct, failover = [], []
    for _ in range(confirms):  # interleaved, so drift affects both alike
        total, psp, calls = confirm_once(direct_merchant)
        assert calls == 1
        direct.append((total, psp))
        total, psp, calls = confirm_once(failover_merchant)
        assert calls == 2
        failover.append((total, psp))
    base_overhead = statistics.median(t - p for t, p in direct)
    extra = [(t - p) - base_overhead for t, p in failover]
    # the same in CPU time of this thread (no waiting on PostgreSQL, Redis or the PSP), and
    # the database round trip of this machine at the time, to read the wall figures against
    base_cpu = statistics.median(cpu_times[direct_merchant.pk])
    base_routing = statistics.median(routing_times[direct_merchant.pk])
    extra_routing = [r - base_routing for r in routing_times[failover_merchant.pk]]
    extra_cpu = [c - base_cpu for c in cpu_times[failover_merchant.pk]]
    round_trips = []
    with connection.cursor() as cursor:
        for _ in range(200):
            started = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchone()
            round_trips.append((time.perf_counter() - started) * 1000)
    p95 = pct(extra, 95)
    return [
        {
            "scenario": "direct",
            "title": "confirm straight to B",
            "confirms": confirms,
            "p50_ms": pct([t for t, _ in direct], 50),
            "p95_ms": pct([t for t, _ in direct], 95),
            "overhead_p50_ms": round(base_overhead, 3),
            "target": "(baseline)",
            "verdict": "",
        },
        {
            # measured directly on every failover: from A's answer (the failed connector's own
            # time ends) to B's request; what the failover adds, without the noise of two whole
            # confirms that the estimate below carries
            "scenario": "failover",
            "title": "failover cost (A 503 -> B), measured gap",
            "confirms": confirms,
            "p50_ms": pct(gaps, 50),
            "p95_ms": pct(gaps, 95),
            "p99_ms": pct(gaps, 99),
            "target": f"p95 < {TARGETS['failover']} ms",
            "verdict": "PASS" if pct(gaps, 95) < TARGETS["failover"] else "FAIL",
        },
        {
            "scenario": "failover_estimate",
            "extra_sql_statements": statistics.median(sql_counts[failover_merchant.pk])
            - statistics.median(sql_counts[direct_merchant.pk]),
            "routing_share_p50_ms": pct(extra_routing, 50),
            "routing_share_p95_ms": pct(extra_routing, 95),
            "extra_cpu_p50_ms": pct(extra_cpu, 50),
            "extra_cpu_p95_ms": pct(extra_cpu, 95),
            "db_round_trip_p50_ms": pct(round_trips, 50),
            "db_round_trip_p95_ms": pct(round_trips, 95),
            "title": "failover cost, estimate: confirm minus PSP time minus direct median",
            "confirms": confirms,
            "p50_ms": pct(extra, 50),
            "p95_ms": p95,
            "p99_ms": pct(extra, 99),
            "psp_a_p50_ms": pct([p for _, p in failover], 50),
            "confirm_p50_ms": pct([t for t, _ in failover], 50),
            "target": "(informative)",
            "verdict": "",
        },
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--confirms", type=int, default=200)
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "routing.json"))
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=float(os.environ.get("BENCH_QUIET_WAIT", 20)),
        help="seconds to wait (at most) for the machine to be quiet before a scenario",
    )
    parser.add_argument("--quiet-load", type=float, default=1.5)
    args = parser.parse_args()

    django.setup()
    ensure_database()
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.REDIS_URL).flushdb()

    from tests.support.simulator import start_simulator

    sys.path.insert(0, str(ROOT / "bench"))
    import procstat
    from django.db import connection

    def quiet() -> float:
        # after the other benchmarks of `make bench`: flush PostgreSQL's dirty buffers and let
        # the machine settle, so the figures are about this code, not the previous run
        def checkpoint() -> None:
            with connection.cursor() as cursor:
                cursor.execute("CHECKPOINT")

        return procstat.wait_for_quiet(args.quiet_wait, args.quiet_load, before=checkpoint)

    loads = {"decision": quiet()}
    results = bench_decision(args.decisions)
    sim_url, stop = start_simulator()
    try:
        loads["failover"] = quiet()
        results += bench_failover(args.confirms, sim_url)
    finally:
        stop()

    header = f"{'scenario':<38} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  target"
    print(header)
    print("-" * len(header))
    for row in results:
        print(
            f"{row['title']:<38} {row.get('p50_ms', ''):>8} {row.get('p95_ms', ''):>8} "
            f"{row.get('p99_ms', ''):>8}  {row['target']} {row['verdict']}"
        )
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        json.dumps(
            {
                "benchmark": "routing decision (50 rules) and failover cost",
                "database": settings.DATABASES["default"]["NAME"],
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "load_average": os.getloadavg(),
                "load_average_at_scenario_start": loads,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written: {output.relative_to(ROOT)}")
    return 0 if all(r["verdict"] != "FAIL" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
