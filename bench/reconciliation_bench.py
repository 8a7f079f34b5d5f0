"""Reconciliation benchmark (issue 14): a generated Adyen Settlement details report of
1,000,000 lines against a database holding the matching payments and refunds, with a few
thousand injected discrepancies of each kind. Timed: store raw + hash, parse + COPY, match,
discrepancies, post, missing items (one `reconciliation_run`), in a fresh worker process whose
peak RSS is measured. Checked: every injected discrepancy found, as its kind, and nothing else.

Own database (default `payments_platform_recon_bench`, recreated each run; override with
RECON_BENCH_DATABASE_URL), so demo data stays untouched.

    .venv/bin/python bench/reconciliation_bench.py [--lines 1000000] [--per-kind 3000]

Prints where the time goes and writes bench/results/reconciliation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DATABASE_URL = os.environ.get(
    "RECON_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/payments_platform_recon_bench"
)
os.environ["DATABASE_URL"] = BENCH_DATABASE_URL
os.environ["DJANGO_SETTINGS_MODULE"] = "payments_platform.settings.base"
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("SIMULATOR_URL", "http://127.0.0.1:9")  # never called: no fetch
os.environ.setdefault("RECONCILIATION_STORAGE_DIR", str(ROOT / ".local" / "recon_bench_reports"))

TARGETS = {"seconds": 60, "peak_rss_mb": 500}
KINDS = (
    "amount_mismatch",
    "fee_mismatch",
    "duplicate",
    "unexpected_in_report",
    "unexpected_refund",
    "payout_mismatch",
    "missing_in_report",
)
MERCHANT_ACCOUNT = "BenchShopECOM"
RUN_DATE = date(2026, 6, 15)  # a Monday
FEE_FIXED, FEE_BPS = 11, (30, 20, 80)  # the profile's agreed Interchange++ terms


def _django():
    import django

    django.setup()


def recreate_database() -> None:
    import psycopg

    base, name = BENCH_DATABASE_URL.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        check=True,
        env={**os.environ},
    )


def _fees(amount: int) -> tuple[int, int, int, int]:
    markup, scheme, interchange = ((amount * b + 5000) // 10000 for b in FEE_BPS)
    return FEE_FIXED, markup, scheme, interchange


def _major(minor: int) -> str:
    """Non-negative minor units (EUR) as the report's major-unit text, without floats."""
    return f"{minor // 100}.{minor % 100:02d}"


def plan(lines: int, per_kind: int, batches: int) -> dict:
    """How many of each row: the file's lines add up to `lines` exactly."""
    refunds = max(per_kind, lines // 20)
    extra = 3 * per_kind  # duplicate, unknown transaction, unknown refund lines
    captures_in_file = lines - refunds - extra - batches
    return {
        "lines": lines,
        "batches": batches,
        "refunds": refunds,
        "captures_in_file": captures_in_file,
        "captures": captures_in_file + per_kind,  # + the missing ones (not in the file)
        "per_kind": per_kind,
    }


def seed(p: dict) -> dict:
    """Merchant, connector, profile, and the payments and refunds as rows (set-based SQL: a
    million payments through the API would take hours; the rows are what matching reads)."""
    _django()
    from django.db import connection

    from apps.reconciliation.models import ReconciliationProfile
    from tests.factories import ConnectorFactory, MerchantFactory

    merchant = MerchantFactory(name="Recon bench", email="")
    connector = ConnectorFactory(
        adyen=True,
        merchant=merchant,
        name="adyen-recon-bench",
        simulator_account="adyen-recon-bench",
        credentials={
            "api_key": "AQE_bench",
            "merchant_account": MERCHANT_ACCOUNT,
            "hmac_key": "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056",
        },
    )
    ReconciliationProfile.objects.create(
        connector=connector,
        fee_fixed=FEE_FIXED,
        fee_components_bps=list(FEE_BPS),
        expect_since=datetime(2026, 1, 1, tzinfo=UTC),
        settlement_window_days=3,
        settlement_delay_days=1,
    )
    k = p["per_kind"]
    n = p["captures"]
    d = datetime(RUN_DATE.year, RUN_DATE.month, RUN_DATE.day, 12, tzinfo=UTC)
    # capture i: amount 1000 + i % 50000; occurred the day before the batch, except the late
    # ones (3 days before) and the missing ones (10 days before, never in the file)
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO intents_paymentintent (
                public_id, livemode, status, amount, currency, capture_method,
                amount_capturable, amount_received, amount_refunded, psp_reference,
                pending_operation, order_id, customer_email, description, metadata,
                cancellation_reason, needs_review, created_at, updated_at, merchant_id,
                ledger_hold, platform_fee_amount, splits, return_url, pending_inquiry_count,
                authorized_at, connector_id, payment_method_options, amount_details,
                amount_disputed, disputed)
            SELECT 'pi_bench' || i, false, 'succeeded', 1000 + i %% 50000, 'eur', 'automatic',
                   0, 1000 + i %% 50000, 0, 'PSP' || lpad(i::text, 13, '0'), '', '', '', '',
                   '{}', '', false, %(created)s, %(created)s, %(merchant)s, '', 0, '[]', '', 0,
                   CASE WHEN i < %(missing)s THEN %(d)s - interval '10 days'
                        WHEN i < %(late)s THEN %(d)s - interval '3 days'
                        ELSE %(d)s - interval '1 day' END,
                   %(connector)s, '{}', '{}', 0, false
            FROM generate_series(0, %(n)s - 1) AS i
            """,
            {
                "created": d - timedelta(days=11),
                "merchant": merchant.pk,
                "missing": k,
                "late": 2 * k,
                "d": d,
                "n": n,
                "connector": connector.pk,
            },
        )
        cursor.execute(
            """
            INSERT INTO intents_paymentattempt (
                public_id, sequence, psp_idempotency_key, amount, currency, outcome,
                decline_code, raw_code, raw_message, psp_reference, routing_trace,
                inquiry_count, started_at, connector_id, intent_id)
            SELECT 'pa_bench' || substr(pi.public_id, 9), 1, 'key_' || pi.id, pi.amount, 'eur',
                   'approved', '', '', '', pi.psp_reference, '{}', 0, pi.authorized_at,
                   %(connector)s, pi.id
            FROM intents_paymentintent pi WHERE pi.merchant_id = %(merchant)s
            """,
            {"connector": connector.pk, "merchant": merchant.pk},
        )
        # refunds of the last payments (not missing, not late): 500 each
        cursor.execute(
            """
            INSERT INTO intents_refund (
                public_id, livemode, amount, currency, reason, status, psp_idempotency_key,
                psp_reference, failure_reason, metadata, inquiry_count, created_at,
                updated_at, connector_id, intent_id, merchant_id)
            SELECT 're_bench' || i, false, 500, 'eur', '', 'succeeded', 'rkey_' || i,
                   'REF' || lpad(i::text, 13, '0'), '', '{}', 0,
                   %(d)s - interval '1 day', %(d)s - interval '1 day', %(connector)s,
                   pi.id, %(merchant)s
            FROM generate_series(0, %(refunds)s - 1) AS i
            JOIN intents_paymentintent pi ON pi.public_id = 'pi_bench' || (%(n)s - 1 - i)
            """,
            {
                "d": d,
                "connector": connector.pk,
                "merchant": merchant.pk,
                "refunds": p["refunds"],
                "n": n,
            },
        )
        cursor.execute(
            "UPDATE intents_paymentintent SET amount_refunded = 500 "
            "WHERE public_id IN (SELECT 'pi_bench' || (%s - 1 - i) "
            "FROM generate_series(0, %s - 1) i)",
            [n, p["refunds"]],
        )
        cursor.execute("ANALYZE")
    return {"connector": connector.public_id, "seed_seconds": time.monotonic() - started}


def write_report(path: Path, p: dict) -> dict:
    """The Adyen report, streamed to disk; returns what was injected."""
    from apps.psp_simulator.settlement import ADYEN_COLUMNS

    k, n = p["per_kind"], p["captures"]
    rng = random.Random(14)
    # which captures carry which injection (missing: 0..k-1 are not in the file; late: k..2k-1)
    pool = list(range(2 * k, n - p["refunds"]))
    rng.shuffle(pool)
    amount_changed = set(pool[:k])
    fee_changed = set(pool[k : 2 * k])
    duplicated = set(pool[2 * k : 3 * k])
    rows: list[tuple] = []  # (kind, index) in file order, before batching
    for i in range(k, n):
        rows.append(("capture", i))
        if i in duplicated:
            rows.append(("capture", i))
    for j in range(p["refunds"]):
        rows.append(("refund", j))
    for j in range(k):
        rows.append(("unknown", j))
        rows.append(("unknown_refund", j))
    rng.shuffle(rows)
    batches = p["batches"]
    per_batch = -(-len(rows) // batches)
    mismatched_batches = set(rng.sample(range(batches), k))
    booked = f"{RUN_DATE.isoformat()} 01:00:00"
    header = ",".join(ADYEN_COLUMNS) + "\n"

    def line(type_, psp, mref, mod, mmref, gross, fees, batch):
        commission, markup, scheme, interchange = fees
        fee = commission + markup + scheme + interchange
        net = gross - fee
        gd, gc = (_major(-gross), "") if gross < 0 else ("", _major(gross))
        nd, nc = (_major(-net), "") if net < 0 else ("", _major(net))
        fee_cols = (
            [_major(commission), _major(markup), _major(scheme), _major(interchange)]
            if fee
            else ["", "", "", ""]
        )
        return net, ",".join(
            [
                "BenchCompany",
                MERCHANT_ACCOUNT,
                psp,
                mref,
                "visa",
                booked,
                "UTC",
                type_,
                mod,
                "EUR",
                gd,
                gc,
                "1",
                "EUR",
                nd,
                nc,
                *fee_cols,
                "visa",
                mmref,
                str(batch),
            ]
        ) + "\n"

    written = 0
    with open(path, "w", encoding="utf-8", buffering=1 << 20) as out:
        out.write(header)
        for b in range(batches):
            total = 0
            for kind, i in rows[b * per_batch : (b + 1) * per_batch]:
                if kind == "capture":
                    amount = 1000 + i % 50000
                    gross = amount + 100 if i in amount_changed else amount
                    fees = list(_fees(gross))
                    if i in fee_changed:
                        fees[0] += 50
                    ref = f"PSP{i:013d}"
                    net, text = line("Settled", ref, f"pa_bench{i}", ref, "", gross, fees, b + 1)
                elif kind == "refund":
                    i_payment = n - 1 - i
                    net, text = line(
                        "Refunded",
                        f"PSP{i_payment:013d}",
                        f"pa_bench{i_payment}",
                        f"REF{i:013d}",
                        f"re_bench{i}",
                        -500,
                        (0, 0, 0, 0),
                        b + 1,
                    )
                elif kind == "unknown":
                    net, text = line(
                        "Settled",
                        f"GHOST{i:011d}",
                        f"ext_{i}",
                        f"GHOST{i:011d}",
                        "",
                        4200,
                        _fees(4200),
                        b + 1,
                    )
                else:  # a refund we never made, on one of our payments
                    i_payment = 2 * k + i
                    net, text = line(
                        "Refunded",
                        f"PSP{i_payment:013d}",
                        f"pa_bench{i_payment}",
                        f"GHOSTREF{i:08d}",
                        f"ext_re_{i}",
                        -300,
                        (0, 0, 0, 0),
                        b + 1,
                    )
                total += net
                out.write(text)
                written += 1
            paid = total - 100 if b in mismatched_batches else total
            out.write(
                ",".join(
                    [
                        "BenchCompany",
                        MERCHANT_ACCOUNT,
                        "",
                        f"payout_{b + 1}",
                        "",
                        booked,
                        "UTC",
                        "MerchantPayout",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "EUR",
                        _major(paid) if paid >= 0 else "",
                        _major(-paid) if paid < 0 else "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        str(b + 1),
                    ]
                )
                + "\n"
            )
            written += 1
    injected = {kind: k for kind in KINDS}
    return {"lines_written": written, "injected": injected, "late": k}


def run_phase(report_path: str, connector_public_id: str) -> None:
    """The timed part, in its own process: store + hash, then one reconciliation run."""
    _django()
    from apps.connectors import selectors as connector_selectors
    from apps.reconciliation import services

    connector = connector_selectors.connector_get_unscoped(public_id=connector_public_id)
    started = time.monotonic()
    with open(report_path, "rb") as handle:
        report, _ = services.report_receive(
            connector=connector,
            name="settlement_detail_report_batch_1.csv",
            chunks=iter(lambda: handle.read(1 << 20), b""),
            source="uploaded",
        )
    stored = time.monotonic() - started
    run = services.reconciliation_run(
        connector=connector, run_date=RUN_DATE, trigger="command", reports=[report]
    )
    total = time.monotonic() - started
    print(
        json.dumps(
            {
                "status": run.status,
                "error": run.error,
                "seconds": total,
                "timings": {"store_and_hash": stored, **run.timings},
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "counts": run.counts,
                "run": run.public_id,
            }
        )
    )


def verify(run_id: str) -> dict:
    _django()
    from django.db.models import Count

    from apps.reconciliation.models import Discrepancy, ReconciliationRun, SettlementLine

    run = ReconciliationRun.objects.get(public_id=run_id)
    found = dict(
        Discrepancy.objects.filter(connector_id=run.connector_id)
        .values_list("kind")
        .annotate(n=Count("id"))
    )
    late = SettlementLine.objects.filter(run=run, late=True).count()
    return {"found": found, "late": late}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--per-kind", type=int, default=3000)
    parser.add_argument("--batches", type=int, default=5000)
    parser.add_argument("--phase", choices=["all", "run"], default="all")
    parser.add_argument("--report")
    parser.add_argument("--connector")
    args = parser.parse_args()
    if args.phase == "run":
        if os.environ.get("RECON_BENCH_CPROFILE"):  # where the Python time goes
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.runcall(run_phase, args.report, args.connector)
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
        else:
            run_phase(args.report, args.connector)
        return 0

    p = plan(args.lines, args.per_kind, args.batches)
    print(f"reconciliation bench: {json.dumps(p)}")
    t = time.monotonic()
    recreate_database()
    print(f"  database recreated and migrated in {time.monotonic() - t:.1f} s")
    seeded = seed(p)
    print(
        f"  seeded {p['captures']} payments, {p['refunds']} refunds in "
        f"{seeded['seed_seconds']:.1f} s"
    )
    workdir = ROOT / ".local"
    workdir.mkdir(exist_ok=True)
    report_path = workdir / "recon_bench_report.csv"
    t = time.monotonic()
    generated = write_report(report_path, p)
    size_mb = report_path.stat().st_size / 1e6
    print(
        f"  report: {generated['lines_written']} lines, {size_mb:.0f} MB, generated in "
        f"{time.monotonic() - t:.1f} s"
    )

    load = os.getloadavg()
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--phase",
            "run",
            "--report",
            str(report_path),
            "--connector",
            seeded["connector"],
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    if out.returncode != 0:
        print(out.stdout, out.stderr)
        return 1
    if os.environ.get("RECON_BENCH_CPROFILE"):
        print(out.stderr[-12000:])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    checked = verify(result["run"])
    expected = generated["injected"]
    exact = checked["found"] == expected and checked["late"] == generated["late"]
    print(
        f"  run {result['run']}: {result['status']} in {result['seconds']:.1f} s "
        f"(target < {TARGETS['seconds']} s), worker peak RSS {result['peak_rss_mb']:.0f} MB "
        f"(target < {TARGETS['peak_rss_mb']} MB); load average before {load[0]:.1f}"
    )
    print("  where the time goes (s):")
    for phase, seconds in sorted(result["timings"].items(), key=lambda kv: -kv[1]):
        print(f"    {phase:16} {seconds:7.2f}")
    print(
        f"  discrepancies found: {json.dumps(checked['found'], sort_keys=True)}; late "
        f"{checked['late']}"
    )
    print(
        f"  injected:            {json.dumps(expected, sort_keys=True)}; late {generated['late']}"
    )
    print(f"  every injected discrepancy found and nothing else: {'yes' if exact else 'NO'}")
    ok = (
        exact
        and result["status"] == "succeeded"
        and result["seconds"] < TARGETS["seconds"]
        and result["peak_rss_mb"] < TARGETS["peak_rss_mb"]
    )
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "reconciliation.json").write_text(
        json.dumps(
            {
                "benchmark": f"reconciliation: a {p['lines']:,}-line settlement report",
                # the shape `payments_bench.py summary` prints
                "results": [
                    {
                        "title": "ingest + match + post",
                        "lines_per_s": int(p["lines"] / result["seconds"]),
                        "seconds": round(result["seconds"], 1),
                        "peak_rss_mb": round(result["peak_rss_mb"]),
                        "exact": exact,
                        "verdict": "pass" if ok else "fail",
                    }
                ],
                "plan": p,
                "result": result,
                "found": checked,
                "injected": expected,
                "exact": exact,
                "targets": TARGETS,
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "load_average_before": load,
                },
                "at": datetime.now(UTC).isoformat(),
            },
            indent=2,
        )
    )
    report_path.unlink(missing_ok=True)
    # the stored raw copy (hash-named) of this run's generated report, 169 MB: not kept
    shutil.rmtree(os.environ["RECONCILIATION_STORAGE_DIR"], ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
