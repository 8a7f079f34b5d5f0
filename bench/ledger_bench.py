"""Ledger posting benchmark: two-leg journals through `ledger_post`, N concurrent worker threads.

Scenarios
- spread: each worker posts on its own rotation of merchants (no lock contention between
  workers): measures the posting path itself.
- hot: every worker posts on the same merchant's two accounts: measures the serialized
  critical section (row lock held from SELECT … FOR UPDATE to COMMIT).

Runs against its own database (default `payments_platform_ledger_bench`, created and migrated
on first use; override with LEDGER_BENCH_DATABASE_URL) so demo data stays untouched.

    .venv/bin/python bench/ledger_bench.py [--workers 8] [--seconds 10]

Prints a table and writes bench/results/ledger.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
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

BENCH_DATABASE_URL = os.environ.get(
    "LEDGER_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/payments_platform_ledger_bench"
)
os.environ["DATABASE_URL"] = BENCH_DATABASE_URL  # read by settings.base
os.environ["DJANGO_SETTINGS_MODULE"] = "payments_platform.settings.base"
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402
import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

BENCH_MERCHANT_BASE = 900_000_000  # far from any real merchant id
TARGETS = {"spread": {"postings_per_s": 1000, "p99_ms": 50}, "hot": {"postings_per_s": 400}}


def ensure_database() -> None:
    from django.conf import settings

    name = settings.DATABASES["default"]["NAME"]
    params = settings.DATABASES["default"]
    with psycopg.connect(
        host=params.get("HOST") or "127.0.0.1",
        port=params.get("PORT") or 5432,
        user=params.get("USER") or "postgres",
        password=params.get("PASSWORD") or None,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _post_loop(name: str, run: str, worker: int, merchants: list[int], stop_at: float) -> list:
    """One worker: posts until `stop_at` (perf_counter clock); returns latencies in seconds."""
    from django.db import connection

    from apps.ledger import chart
    from apps.ledger.chart import Leg
    from apps.ledger.services import ledger_post

    debit_code, credit_code = chart.psp_receivable("bench"), chart.MERCHANT_PENDING
    samples: list[float] = []
    i = 0
    try:
        while time.perf_counter() < stop_at:
            merchant_id = merchants[i % len(merchants)]
            amount = 100 + (i % 900)
            started = time.perf_counter()
            ledger_post(
                merchant_id=merchant_id,
                livemode=False,
                currency="eur",
                kind="capture",
                idempotency_key=f"bench:{run}:{name}:{worker}:{i}",
                legs=[Leg.debit(debit_code, amount), Leg.credit(credit_code, amount)],
                metadata={"bench": run},
                source_type="bench",
                source_id=f"bench_{run}_{worker}_{i}",
            )
            samples.append(time.perf_counter() - started)
            i += 1
    finally:
        connection.close()
    return samples


def _process_worker(args) -> tuple[list, str | None]:
    name, run, worker, merchants, start_at, seconds = args
    # every process waits for the same wall-clock start so that they all run together
    time.sleep(max(0.0, start_at - time.time()))
    try:
        return _post_loop(name, run, worker, merchants, time.perf_counter() + seconds), None
    except Exception as exc:  # reported, not hidden: a benchmark with errors is void
        return [], f"worker {worker}: {exc!r}"


def run_scenario(
    name: str, *, workers: int, seconds: float, merchants_per_worker: int, mode: str
) -> dict:
    from django.db import connection

    from apps.ledger import chart
    from apps.ledger.services import ledger_accounts_open

    run = uuid.uuid4().hex[:8]

    def merchants_for(worker: int) -> list[int]:
        if name == "hot":
            return [BENCH_MERCHANT_BASE]
        start = BENCH_MERCHANT_BASE + 1 + worker * merchants_per_worker
        return list(range(start, start + merchants_per_worker))

    # accounts exist before the clock starts: the benchmark measures postings, not onboarding
    for worker in range(workers):
        for merchant_id in merchants_for(worker):
            ledger_accounts_open(
                merchant_id=merchant_id,
                livemode=False,
                currency="eur",
                codes=[chart.psp_receivable("bench"), chart.MERCHANT_PENDING],
            )
    connection.close()  # no connection may cross a fork

    errors: list[str] = []
    latencies: list[list[float]] = []
    if mode == "processes":
        start_at = time.time() + 1.0
        context = multiprocessing.get_context("fork")
        with context.Pool(workers) as pool:
            began = time.perf_counter() + max(0.0, start_at - time.time())
            outcomes = pool.map(
                _process_worker,
                [(name, run, w, merchants_for(w), start_at, seconds) for w in range(workers)],
            )
        elapsed = time.perf_counter() - began
        for samples, error in outcomes:
            latencies.append(samples)
            if error:
                errors.append(error)
    else:
        latencies = [[] for _ in range(workers)]
        barrier = threading.Barrier(workers + 1)
        stop_at = [0.0]

        def work(worker: int) -> None:
            try:
                barrier.wait()
                latencies[worker] = _post_loop(name, run, worker, merchants_for(worker), stop_at[0])
            except Exception as exc:  # reported, not hidden
                errors.append(f"worker {worker}: {exc!r}")

        threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
        for thread in threads:
            thread.start()
        stop_at[0] = time.perf_counter() + seconds
        barrier.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began

    flat = sorted(x for worker in latencies for x in worker)
    count = len(flat)

    def pct(p: float) -> float:
        return round(flat[min(count - 1, int(p / 100 * count))] * 1000, 2) if count else 0.0

    return {
        "scenario": name,
        "mode": mode,
        "workers": workers,
        "accounts": 2 if name == "hot" else 2 * workers * merchants_per_worker,
        "postings": count,
        "seconds": round(elapsed, 2),
        "postings_per_s": round(count / elapsed, 1) if elapsed else 0.0,
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "max_ms": round(flat[-1] * 1000, 2) if flat else 0.0,
        "mean_ms": round(statistics.fmean(flat) * 1000, 2) if flat else 0.0,
        "errors": errors,
    }


def verdict(result: dict) -> str:
    target = TARGETS[result["scenario"]]
    ok = result["postings_per_s"] >= target["postings_per_s"] and not result["errors"]
    if "p99_ms" in target:
        ok = ok and result["p99_ms"] < target["p99_ms"]
    return "PASS" if ok else "FAIL"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--merchants-per-worker", type=int, default=25)
    parser.add_argument(
        "--mode",
        choices=("threads", "processes"),
        default="processes",
        help="threads share one GIL; processes show what the database and service can do",
    )
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "ledger.json"))
    args = parser.parse_args()

    django.setup()
    ensure_database()

    from django.db import connection

    from apps.ledger.services import ledger_check_drift

    load_before = os.getloadavg()
    results = [
        run_scenario(
            scenario,
            workers=args.workers,
            seconds=args.seconds,
            merchants_per_worker=args.merchants_per_worker,
            mode=args.mode,
        )
        for scenario in ("spread", "hot")
    ]
    load_after = os.getloadavg()
    drift = ledger_check_drift()
    connection.close()

    header = f"{'scenario':<8} {'mode':<9} {'workers':>7} {'postings':>9} {'post/s':>9} "
    header += f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}  target"
    print(header)
    print("-" * len(header))
    for r in results:
        target = TARGETS[r["scenario"]]
        goal = f">= {target['postings_per_s']}/s" + (
            f", p99 < {target['p99_ms']} ms" if "p99_ms" in target else ""
        )
        print(
            f"{r['scenario']:<8} {r['mode']:<9} {r['workers']:>7} {r['postings']:>9} "
            f"{r['postings_per_s']:>9} "
            f"{r['p50_ms']:>8} {r['p95_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8}  "
            f"{goal} {verdict(r)}"
        )
        for error in r["errors"]:
            print(f"  error: {error}")
    print(f"drift check after the run: {drift.status} ({drift.findings_count} findings)")
    # the benchmark shares the machine's CPUs with PostgreSQL and anything else running
    print(
        f"{os.cpu_count()} CPUs; load average before {load_before[0]:.2f}, "
        f"after {load_after[0]:.2f}"
    )

    report = {
        "benchmark": "ledger_post, two-leg journals",
        "database": BENCH_DATABASE_URL.rsplit("/", 1)[-1],
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_1m": {"before": load_before[0], "after": load_after[0]},
        "results": [{**r, "verdict": verdict(r)} for r in results],
        "drift_check": {"status": drift.status, "findings": drift.findings_count},
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {output}")
    return 0 if all(verdict(r) == "PASS" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
