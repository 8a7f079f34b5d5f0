# ruff: noqa: E501  (the generating SQL reads better on long lines)
"""Dashboard benchmark: the ops, finance and risk dashboards over 30 days of a million payments.

Data: 1,000,000 payment intents over the last 30 days (10 merchants, 3 connectors each of
stripe/adyen, 4 brands, 3 currencies, 6 countries; ~82% approved, soft and hard declines with
their codes, 10% failing over to a second attempt, latencies), written straight into the
intents and attempts tables by `generate_series` SQL (the services would take hours for a
million), plus 30 days of ledger rollup rows. Then:

- the full rollup build over the 30 days (`rollups_refresh`), once;
- the every-minute refresh (`rollups_refresh_recent`), as beat runs it;
- each dashboard query (`ops_dashboard`, `finance_dashboard`, `risk_dashboard`) for 30 days per
  day, 7 days per hour and 24 hours per minute, all merchants and one merchant; 5 runs each,
  the median and the slowest reported. Target: < 1 s (the issue's "well under a second").

Own database (default `payments_platform_dashboards_bench`, created, migrated and filled on
first use, reused afterwards; `--fresh` rebuilds it; DASHBOARDS_BENCH_DATABASE_URL overrides).

    .venv/bin/python bench/dashboards_bench.py [--payments 1000000] [--fresh]

Prints a table and writes bench/results/dashboards.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ["DATABASE_URL"] = os.environ.get(
    "DASHBOARDS_BENCH_DATABASE_URL",
    "postgres://postgres@127.0.0.1:5432/payments_platform_dashboards_bench",
)
os.environ["REDIS_URL"] = os.environ.get("DASHBOARDS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
os.environ["CELERY_BROKER_URL"] = os.environ["REDIS_URL"]
os.environ["DJANGO_SETTINGS_MODULE"] = "payments_platform.settings.base"
os.environ.setdefault("LOG_LEVEL", "ERROR")

import django  # noqa: E402
import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

TARGET_MS = 1000.0
RUNS = 5


def ensure_database(fresh: bool) -> None:
    from django.conf import settings

    params = settings.DATABASES["default"]
    name = params["NAME"]
    with psycopg.connect(
        host=params.get("HOST") or "127.0.0.1",
        port=params.get("PORT") or 5432,
        user=params.get("USER") or "postgres",
        password=params.get("PASSWORD") or None,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and fresh:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            exists = None
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def generate(payments: int) -> dict:
    """Merchants and connectors through the factories (the services), payments by SQL."""
    from django.db import connection

    from apps.intents.models import PaymentIntent
    from tests.factories import ConnectorFactory, MerchantFactory, PaymentMethodFactory

    if PaymentIntent.objects.count() >= payments:
        return {"generated": False}
    started = time.perf_counter()
    merchants = [MerchantFactory(name=f"Bench shop {i}") for i in range(10)]
    for merchant in merchants:
        for i in range(3):
            ConnectorFactory(
                merchant=merchant, adyen=bool(i % 2), supported_currencies=["eur", "usd", "gbp"]
            )
    cards = {
        "visa": "4242424242424242",
        "mastercard": "5555555555554444",
        "amex": "378282246310005",
        "discover": "6011111111111117",
    }
    for merchant in merchants:
        for number in cards.values():
            PaymentMethodFactory(merchant=merchant, number=number)
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        cursor.execute(
            """
            CREATE TEMP TABLE bench_plan AS
            SELECT g AS n,
                   now() - (random() * interval '30 days') AS at,
                   (SELECT array_agg(id ORDER BY id) FROM merchants_merchant
                     WHERE name LIKE 'Bench shop %%') AS merchants,
                   random() AS r, random() AS r2, random() AS r3
            FROM generate_series(1, %s) AS g
            """,
            [payments],
        )
        cursor.execute(
            """
            INSERT INTO intents_paymentintent (
                public_id, merchant_id, livemode, status, amount, currency, capture_method,
                amount_capturable, amount_received, amount_refunded, psp_reference,
                pending_operation, order_id, customer_email, description, metadata,
                cancellation_reason, needs_review, created_at, updated_at, ledger_hold,
                platform_fee_amount, splits, return_url, pending_inquiry_count,
                payment_method_id
            )
            SELECT 'pi_bench' || p.n, m.id, false,
                   CASE WHEN p.r < 0.82 THEN 'succeeded' ELSE 'requires_payment_method' END,
                   (100 + floor(p.r2 * 20000))::bigint,
                   (ARRAY['eur', 'usd', 'gbp'])[1 + floor(p.r3 * 3)::int],
                   'automatic', 0, 0, 0, '', '', '', 'shopper' || p.n || '@example.com', '',
                   '{}'::jsonb, '', false, p.at, p.at, '', 0, '[]'::jsonb, '', 0,
                   (SELECT pm.id FROM vault_paymentmethod pm WHERE pm.merchant_id = m.id
                     ORDER BY pm.id OFFSET floor(p.r2 * 4)::int LIMIT 1)
            FROM bench_plan p
            JOIN LATERAL (SELECT p.merchants[1 + (p.n %% 10)] AS id) m ON true
            """,
            [],
        )
        # the first attempt of every intent; 10% failed over to a second one
        cursor.execute(
            """
            INSERT INTO intents_paymentattempt (
                public_id, intent_id, sequence, connector_id, psp_idempotency_key, amount,
                currency, outcome, decline_code, raw_code, raw_message, psp_reference,
                http_status, latency_ms, routing_trace, inquiry_count, started_at, completed_at
            )
            SELECT 'pa_bench' || i.id || '_' || s.seq, i.id, s.seq,
                   (SELECT c.id FROM routing_connector c WHERE c.merchant_id = i.merchant_id
                     ORDER BY c.id OFFSET (s.seq - 1 + (i.id %% 2))::int LIMIT 1),
                   'k' || i.id || '_' || s.seq, i.amount, i.currency,
                   CASE WHEN s.seq = 1 AND i.id %% 10 = 0 THEN 'error'
                        WHEN i.status = 'succeeded' THEN 'approved'
                        WHEN i.id %% 3 = 0 THEN 'hard_decline' ELSE 'soft_decline' END,
                   CASE WHEN s.seq = 1 AND i.id %% 10 = 0 THEN ''
                        WHEN i.status = 'succeeded' THEN ''
                        WHEN i.id %% 3 = 0 THEN (ARRAY['lost_card', 'stolen_card', 'fraudulent', 'expired_card'])[1 + (i.id %% 4)::int]
                        ELSE (ARRAY['generic_decline', 'insufficient_funds', 'do_not_honor', 'try_again_later'])[1 + (i.id %% 4)::int] END,
                   '', '', '', 200, (20 + (i.id %% 400) + CASE WHEN i.id %% 50 = 0 THEN 1800 ELSE 0 END)::int,
                   jsonb_build_object('confirm_attempt', s.seq), 0,
                   i.created_at + (s.seq - 1) * interval '300 milliseconds',
                   i.created_at + s.seq * interval '300 milliseconds'
            FROM intents_paymentintent i
            CROSS JOIN LATERAL (
                SELECT 1 AS seq UNION ALL SELECT 2 WHERE i.id %% 10 = 0
            ) s
            WHERE i.public_id LIKE 'pi_bench%%'
            """,
            [],
        )
        attempts = cursor.rowcount
        cursor.execute("ANALYZE intents_paymentintent")
        cursor.execute("ANALYZE intents_paymentattempt")
    return {
        "generated": True,
        "payments": payments,
        "attempts": attempts,
        "seconds": round(time.perf_counter() - started, 1),
    }


def ledger_rollups(days: int = 30) -> int:
    """Ledger rollup rows as the refresh writes them (captures, fees, refunds, chargebacks,
    payouts) for every merchant and currency, per hour and (last two days) per minute."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM observability_ledgerrollup")
        cursor.execute(
            """
            INSERT INTO observability_ledgerrollup (period, bucket, merchant_id, livemode,
                currency, kind, account_type, amount, entries, journals)
            SELECT 'hour', h, m.id, false, cur, k.kind, k.account, k.sign * (1000 + floor(random() * 500000))::bigint, 10, 5
            FROM generate_series(date_trunc('hour', now() - interval '%s days'), now(), interval '1 hour') h
            CROSS JOIN (SELECT id FROM merchants_merchant WHERE name LIKE 'Bench shop %%') m
            CROSS JOIN unnest(ARRAY['eur', 'usd', 'gbp']) cur
            CROSS JOIN (VALUES ('capture', 'psp_receivable', 1), ('capture', 'psp_fees', 1),
                               ('capture', 'merchant_pending', -1), ('capture', 'platform_fee_revenue', -1),
                               ('funds_release', 'merchant_available', -1), ('refund', 'psp_receivable', -1),
                               ('chargeback', 'dispute_losses', 1), ('payout', 'payouts_in_transit', 1),
                               ('payout', 'merchant_available', 1)) k(kind, account, sign)
            """,
            [days],
        )
        return cursor.rowcount


def timed(function, *args, runs: int = RUNS) -> dict:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function(*args)
        samples.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(samples), 1), "max_ms": round(max(samples), 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=1_000_000)
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args()
    django.setup()
    ensure_database(args.fresh)
    from django.db.models import Min
    from django.utils import timezone

    from apps.merchants.models import Merchant
    from apps.observability import dashboards, rollups
    from apps.observability.models import AttemptRollup

    results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    results["data"] = generate(args.payments)
    print("data:", results["data"])
    if results["data"]["generated"] or not AttemptRollup.objects.filter(period="day").exists():
        started = time.perf_counter()
        written = rollups.rollups_refresh(since=timezone.now() - timedelta(days=31))
        results["full_build"] = {"seconds": round(time.perf_counter() - started, 1), **written}
        print("full rollup build:", results["full_build"])
    results["ledger_rollup_rows"] = ledger_rollups()
    results["rollup_rows"] = {
        period: AttemptRollup.objects.filter(period=period).count() for period in ("minute", "hour")
    }
    results["refresh_recent"] = timed(rollups.rollups_refresh_recent)
    one = Merchant.objects.filter(name__startswith="Bench shop").aggregate(Min("id"))["id__min"]
    scenarios = {}
    for range_key, granularity in (
        ("30d", "day"),
        ("30d", "hour"),
        ("7d", "hour"),
        ("24h", "minute"),
    ):
        for scope_name, scope in (("all merchants", None), ("one merchant", {one})):
            query = dashboards.query_from_params(
                {"range": range_key, "granularity": granularity}, merchant_ids=scope
            )
            for name, function in (
                ("ops", dashboards.ops_dashboard),
                ("finance", dashboards.finance_dashboard),
                ("risk", dashboards.risk_dashboard),
            ):
                key = f"{name} {range_key}/{granularity} {scope_name}"
                scenarios[key] = timed(function, query)
    results["dashboards"] = scenarios
    worst = max(s["max_ms"] for s in scenarios.values())
    results["target_ms"] = TARGET_MS
    results["worst_ms"] = worst
    results["met"] = worst < TARGET_MS
    print(f"\n{'scenario':<48} {'median ms':>10} {'max ms':>10}")
    for key, value in scenarios.items():
        print(f"{key:<48} {value['median_ms']:>10} {value['max_ms']:>10}")
    print(
        f"\nrollup rows: {results['rollup_rows']}; refresh (every minute): {results['refresh_recent']}"
    )
    print(
        f"worst dashboard: {worst} ms (target < {TARGET_MS} ms): {'met' if results['met'] else 'NOT met'}"
    )
    out = ROOT / "bench" / "results" / "dashboards.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
