"""Radar benchmark: the rule evaluation for 50 rules, and the whole risk step of a payment.

Scenarios
- rules_50: `engine.evaluate` on a merchant's 50 enabled rules (the three default rules plus
  47 of every shape: velocity, countries, lists, metadata, and/or/not), none matching, so all
  50 run (the worst case), plus the score. In process. Target p99 < 0.5 ms.
- risk_step (wall time) and risk_step_cpu (the thread's CPU time): `services.risk_assess`
  as the confirm path calls it in tx A, with the default rules enabled: the signals (IP
  country from the offline table), the one Redis script call (velocity record + every
  window read + the rule generation), the compiled-rules cache hit,
  the score and the rules. Target p99 < 1 ms. Each payment uses a new card, email and IP of a
  pool of 1,000 so the sorted sets grow as in production.

No database: the compiled rules are put in the process cache as the first payment would, keyed
by the generation counters the pipeline reads. Own Redis database (RISK_BENCH_REDIS_URL,
default db 11, flushed first).

    .venv/bin/python bench/risk_bench.py [--evaluations 20000] [--payments 5000]

Prints a table and writes bench/results/risk.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["REDIS_URL"] = os.environ.get("RISK_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
os.environ["CELERY_BROKER_URL"] = os.environ["REDIS_URL"]
os.environ["DJANGO_SETTINGS_MODULE"] = "payments_platform.settings.base"
os.environ.setdefault("LOG_LEVEL", "ERROR")

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from django.conf import settings  # noqa: E402

from apps.risk import engine, services, velocity  # noqa: E402
from apps.risk.lang import compile_tree, parse  # noqa: E402

TARGETS = {"rules_50": 0.5, "risk_step": 1.0, "risk_step_cpu": 1.0}
MERCHANT, LIVEMODE = 1, False

EXTRA = [
    ("block", ":card_country: != :ip_country: and :amount: > 5000000"),
    ("review", ":declines_per_card_hourly: >= 30"),
    ("block", ":cards_per_ip_daily: >= 500"),
    ("review", ":cards_per_email_daily: >= 200 and :amount: > 100"),
    ("block", ":email_domain: in @blocked_domains"),
    ("block", ":card_bin: in @blocked_bins"),
    ("block", ":ip_address: in @blocked_ips"),
    ("review", ":ip_country: in @review_countries and :amount: > 90000000"),
    ("block", "::order_type:: = 'giftcard' and :risk_score: >= 99"),
    ("review", "not :is_eea_card: and :amount_per_card_daily: > 900000000"),
    ("request_3ds", ":risk_score: >= 99"),
    ("allow", ":email: in @vip_emails"),
]


def _rules() -> engine.CompiledRules:
    predicates = [(a, p) for a, p, _ in services.DEFAULT_RULES.values()]
    i = 0
    while len(predicates) < 50:
        action, predicate = EXTRA[i % len(EXTRA)]
        # vary the constants so no two rules are identical
        predicates.append((action, predicate.replace(">= ", f">= {i // len(EXTRA)}")))
        i += 1
    by_action: dict[str, list] = {a: [] for a in ("request_3ds", "allow", "block", "review")}
    for n, (action, predicate) in enumerate(predicates):
        by_action[action].append(
            engine.CompiledRule(f"rule_{n}", action, predicate, compile_tree(parse(predicate).tree))
        )
    lists = {
        "blocked_domains": frozenset(f"bad{n}.example" for n in range(1000)),
        "blocked_bins": frozenset(f"{400000 + n}" for n in range(1000)),
        "blocked_ips": frozenset(f"10.0.{n // 256}.{n % 256}" for n in range(1000)),
        "review_countries": frozenset({"KP", "IR"}),
        "vip_emails": frozenset(f"vip{n}@example.com" for n in range(1000)),
    }
    return engine.CompiledRules(by_action, lists, None), len(predicates)


def _signals(n: int) -> dict:
    return {
        "amount": 2000 + n % 5000,
        "currency": "eur",
        "card_fingerprint": f"fp{n % 1000:06d}",
        "card_bin": "424242",
        "card_brand": "visa",
        "card_funding": "credit",
        "card_country": "DE",
        "email": f"shopper{n % 1000}@example.com",
        "email_domain": "example.com",
        "ip_address": f"81.2.{n % 250}.{n % 200}",
        "ip_country": "GB",
        "customer": f"cus_{n % 1000}",
        "merchant_country": "DE",
        "is_eea_card": True,
        "is_customer_initiated": True,
        "metadata": {"order_type": "physical"},
        "declines_per_card_hourly": 1,
        "cards_per_ip_hourly": 2,
    }


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(name: str, samples_ms: list[float]) -> dict:
    return {
        "scenario": name,
        "n": len(samples_ms),
        "p50_ms": round(statistics.median(samples_ms), 4),
        "p95_ms": round(_pct(samples_ms, 0.95), 4),
        "p99_ms": round(_pct(samples_ms, 0.99), 4),
        "max_ms": round(max(samples_ms), 4),
        "target_p99_ms": TARGETS[name],
        "ok": _pct(samples_ms, 0.99) < TARGETS[name],
        "verdict": "met" if _pct(samples_ms, 0.99) < TARGETS[name] else "missed",
    }


def bench_rules(evaluations: int) -> dict:
    rules, count = _rules()
    samples = []
    signals = [_signals(n) for n in range(1000)]
    for n in range(1000):  # warm up
        engine.evaluate(rules, dict(signals[n]))
    gc.collect()
    gc.disable()
    try:
        for n in range(evaluations):
            s = dict(signals[n % 1000])
            t = time.perf_counter()
            assessment = engine.evaluate(rules, s)
            samples.append((time.perf_counter() - t) * 1000)
            assert assessment.type == "authorized", assessment.rule
    finally:
        gc.enable()
    out = _summary("rules_50", samples)
    out["rules"] = count
    return out


def bench_step(payments: int) -> dict:
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    rules, count = _rules()
    client.set(velocity.generation_key(MERCHANT, LIVEMODE), 1)
    client.set(velocity.PLATFORM_GENERATION_KEY, 1)
    rules.generations = (b"1", b"1")
    engine._cache[(MERCHANT, LIVEMODE)] = rules
    samples, cpu = [], []
    cards = [
        {
            "brand": "visa",
            "funding": "credit",
            "bin": "424242",
            "issuer_country": "DE",
            "fingerprint": f"fp{n:06d}",
        }
        for n in range(1000)
    ]

    def facts(n: int) -> services.PaymentFacts:
        return services.PaymentFacts(
            merchant_id=MERCHANT,
            livemode=LIVEMODE,
            payment_intent=f"pi_bench_{n}",
            amount=2000 + n % 5000,
            currency="eur",
            card=cards[n % 1000],
            email=f"shopper{n % 1000}@example.com",
            client_ip=f"81.2.{n % 250}.{n % 200}",
            customer=f"cus_{n % 1000}",
            metadata={"order_type": "physical"},
            merchant_country="DE",
        )

    for n in range(500):
        services.risk_assess(facts=facts(n))
    gc.collect()
    gc.disable()
    try:
        for n in range(500, 500 + payments):
            f = facts(n)
            c, t = time.thread_time(), time.perf_counter()
            assessment = services.risk_assess(facts=f)
            samples.append((time.perf_counter() - t) * 1000)
            cpu.append((time.thread_time() - c) * 1000)
            assert assessment.signals["charges_per_card_daily"] >= 1  # Redis answered
    finally:
        gc.enable()
    assert engine._cache[(MERCHANT, LIVEMODE)] is rules  # every payment hit the cache
    out = _summary("risk_step", samples)
    out["rules"] = count
    out["redis_round_trips_per_payment"] = 1
    # the process's own CPU per payment (wall time minus waiting for Redis and for the cores
    # other processes hold): what issue 16's CPU budget counts
    cpu_out = _summary("risk_step_cpu", cpu)
    cpu_out["rules"] = count
    return out, cpu_out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--evaluations", type=int, default=20000)
    parser.add_argument("--payments", type=int, default=5000)
    args = parser.parse_args()
    results = [bench_rules(args.evaluations), *bench_step(args.payments)]
    print(f"{'scenario':<12} {'n':>7} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'target':>8}")
    for r in results:
        print(
            f"{r['scenario']:<12} {r['n']:>7} {r['p50_ms']:>9.4f} {r['p95_ms']:>9.4f} "
            f"{r['p99_ms']:>9.4f} {'<' + str(r['target_p99_ms']):>8} "
            f"{'ok' if r['ok'] else 'MISSED'}"
        )
    out = ROOT / "bench" / "results" / "risk.json"
    out.write_text(
        json.dumps(
            {
                "benchmark": "risk",
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                "at": int(time.time()),
                "results": results,
            },
            indent=2,
        )
    )
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
