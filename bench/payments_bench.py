"""Payment-path benchmark (`make bench`): create+confirm with automatic capture, end to end.

Started by scripts/bench.sh once the stack is up (gunicorn, Celery worker, PSP simulator on
their bench ports, against the bench database). Subcommands:

    seed      bench merchant, secret key and a Stripe-dialect connector on the simulator
              (JSON on stdout: the key is shown once, like any API key)
    run       queries/CPU profile of one payment in-process, then scenario A and B through
              bench/loadgen.py in a separate process; prints a table and writes
              bench/results/payments.json
    summary   one combined table of every bench/results/*.json written since --since

Scenarios
- F, the raw-SQL floor (bench/floor.py): a bare Django + DRF endpoint doing a payment's writes
  in two transactions, its own gunicorn, same clients as A. Every other scenario's throughput
  and CPU per payment is also given as a ratio to it ("x floor").
- A, overhead path: simulator latency 0; payments/s and p50/p95/p99 latency.
- A1, A with one client: latency without queueing.
- B, realistic PSP: simulator latency normal(200 ms, 50 ms), 64 clients (closed loop);
  payments/s, p95 total latency, and the orchestrator's overhead = client-observed total minus
  the PSP time of the payment's attempts (PaymentAttempt.latency_ms, read after the run).
- Bo, B as a user sees it: open loop, payments arriving at 120/s (Poisson) whatever the
  server's speed, latency from each arrival (no coordinated omission).

Benchmarks are not tests: targets are shown as met/missed and nothing fails on them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "payments_platform.settings.base")

SIM_CONNECTOR = "bench-stripe"
QUIET_BUSY_PCT = 15  # machine busy % (stack idle) above which a scenario waits, then warns
STRIPE_CREDENTIALS = {"api_key": "sk_test_simulator_bench", "webhook_secret": "whsec_bench"}
# issue 16's targets (docs/benchmarks.md)
TARGETS = {
    "F": {},
    "A": {"payments_per_s": 180, "cpu_ms_per_payment": 10},
    "A1": {"p50_ms": 10, "p99_ms": 20},
    "B": {"payments_per_s": 150},
    "Bo": {"p95_ms": 300, "overhead_p95_ms": 20},
}
REALISTIC_PSP = {"latency_ms": 200, "latency_distribution": "normal", "latency_stddev_ms": 50}
SCENARIOS = {
    "F": {"title": "F raw-SQL floor (Django+DRF)", "faults": None, "floor": True},
    "A": {"title": "A overhead path (PSP 0 ms)", "faults": None},
    "A1": {"title": "A1 same, 1 client (no queue)", "faults": None},
    "B": {"title": "B realistic PSP (200±50 ms)", "faults": REALISTIC_PSP},
    "Bo": {"title": "Bo open loop 120/s, PSP 200±50", "faults": REALISTIC_PSP, "open": True},
}


def _django():
    import django

    django.setup()


# --------------------------------------------------------------------------- seed


def seed(sim_url: str) -> dict:
    _django()
    from django.conf import settings

    from apps.connectors import selectors as connector_selectors
    from apps.connectors import services as connector_services
    from apps.core.audit import Actor
    from apps.merchants import services as merchant_services
    from apps.merchants.models import Merchant

    actor = Actor.system("bench")
    merchant = Merchant.objects.filter(metadata__bench=True).first()
    if merchant is None:
        merchant = merchant_services.merchant_create(
            name="Bench Shop", email="bench@example.com", country="NL", actor=actor
        )
        Merchant.objects.filter(pk=merchant.pk).update(metadata={"bench": True})
    key = merchant_services.api_key_create(
        merchant=merchant, kind="secret", livemode=False, actor=actor, name="bench"
    )
    if settings.SIMULATOR_URL.rstrip("/") != sim_url.rstrip("/"):
        # the platform sends only to its configured simulator: the stack must run with it
        raise SystemExit(f"SIMULATOR_URL is {settings.SIMULATOR_URL!r}, not {sim_url!r}")
    connector = next(
        (
            c
            for c in connector_selectors.connector_list(merchant_id=merchant.id, livemode=False)
            if c.name == SIM_CONNECTOR
        ),
        None,
    )
    if connector is None:
        connector = connector_services.connector_create(
            merchant=merchant,
            livemode=False,
            name=SIM_CONNECTOR,
            connector_type="stripe",
            endpoint="simulator",
            simulator_account=SIM_CONNECTOR,
            credentials=STRIPE_CREDENTIALS,
            supported_currencies=["eur", "usd"],
            priority=1,
            actor=actor,
            fee_schedule=[{"brand": "*", "fixed": 25, "percent_bps": 140}],
        )
    # Radar's default rules enabled, as issue 15 measures the path (apps/risk)
    from apps.risk import selectors as risk_selectors
    from apps.risk import services as risk_services

    risk_services.rules_install_defaults(merchant_id=merchant.id, livemode=False, actor=actor)
    for rule in risk_selectors.rule_list(merchant_id=merchant.id, livemode=False):
        if rule.default_key and not rule.enabled:
            risk_services.rule_update(rule=rule, actor=actor, enabled=True)
    return {
        "merchant": merchant.public_id,
        "secret_key": key.raw_key,
        "connector": connector.public_id,
        "sim_connector": SIM_CONNECTOR,
    }


# --------------------------------------------------------------------------- helpers


def pct(values: list[float], p: float) -> float | None:
    """Percentile with linear interpolation between closest ranks."""
    if not values:
        return None
    data = sorted(values)
    k = (len(data) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(data) - 1)
    return round(data[lo] + (data[hi] - data[lo]) * (k - lo), 2)


def set_faults(sim_url: str, faults: dict | None) -> None:
    url = f"{sim_url}/_sim/connectors/{SIM_CONNECTOR}/faults"
    response = (
        requests.put(url, json=faults, timeout=5) if faults else requests.delete(url, timeout=5)
    )
    response.raise_for_status()


def background_busy(seconds: float = 1.5) -> tuple[float, list]:
    """CPU busy % of the whole machine while the stack idles, and its top consumers: anything
    well above a few % is another workload (a test suite, another benchmark, autovacuum after
    the last scenario) competing for the same cores."""
    sys.path.insert(0, str(ROOT / "bench"))
    import procstat

    procs0 = procstat.per_process()
    busy0, total0 = procstat.machine_busy_seconds()
    time.sleep(seconds)
    busy1, total1 = procstat.machine_busy_seconds()
    procs1 = procstat.per_process()
    top = [
        (cmd, round(cpu / seconds * 100, 1)) for cmd, cpu in procstat.top_consumers(procs0, procs1)
    ]
    return round((busy1 - busy0) / max(total1 - total0, 1e-9) * 100, 1), top


def python_speed_s() -> float:
    """Seconds for a fixed pure-Python loop (10M additions): compares this machine's effective
    single-core speed across runs and machines (a recent desktop core: ~0.35 s)."""
    started = time.process_time()
    total = 0
    for i in range(10_000_000):
        total += i
    return round(time.process_time() - started, 3)


def machine_info() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "memory_gb": mem_gb,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": pg,
    }


# --------------------------------------------------------------------------- profile


def _normalize_sql(sql: str) -> str:
    head = " ".join(sql.split())
    for verb in ("INSERT INTO", "UPDATE", "DELETE FROM"):
        if head.upper().startswith(verb):
            return f"{verb} {head[len(verb) :].split()[0]}"
    if head.upper().startswith("SELECT"):
        upper = head.upper()
        frm = upper.find(" FROM ")
        table = head[frm + 6 :].split()[0] if frm >= 0 else ""
        suffix = " FOR UPDATE" if "FOR UPDATE" in upper else ""
        if "MAX(" in upper:
            suffix += " (max)"
        if "COUNT(" in upper:
            suffix += " (count)"
        return f"SELECT {table}{suffix}"
    return head[:40]


class _PsycopgStatements:
    """Counts every statement sent through a psycopg cursor, including the ones Django does not
    see (the ledger writes through its own server-side cursor with prepared statements)."""

    def __init__(self):
        self.count = 0

    def __enter__(self):
        import psycopg

        self._cls, self._orig = psycopg.Cursor, psycopg.Cursor.execute
        counter = self

        def execute(cursor, *args, **kwargs):
            counter.count += 1
            return counter._orig(cursor, *args, **kwargs)

        psycopg.Cursor.execute = execute
        return self

    def __exit__(self, *exc):
        self._cls.execute = self._orig


class _LedgerTimer:
    """Wall and CPU seconds spent inside apps.intents.ledger_hooks while active."""

    HOOKS = ("on_authorized", "on_captured", "on_voided", "on_refunded")

    def __init__(self):
        self.wall = 0.0
        self.cpu = 0.0
        self._originals = {}

    def __enter__(self):
        from apps.intents import ledger_hooks

        for name in self.HOOKS:
            original = getattr(ledger_hooks, name)
            self._originals[name] = original

            def timed(*args, _original=original, **kwargs):
                wall0, cpu0 = time.perf_counter(), time.thread_time()
                try:
                    return _original(*args, **kwargs)
                finally:
                    self.wall += time.perf_counter() - wall0
                    self.cpu += time.thread_time() - cpu0

            setattr(ledger_hooks, name, timed)
        return self

    def __exit__(self, *exc):
        from apps.intents import ledger_hooks

        for name, original in self._originals.items():
            setattr(ledger_hooks, name, original)


def profile(*, secret_key: str, n: int, cprofile_out: Path | None) -> dict:
    """One payment in-process (Django test client, real simulator and database): the queries it
    runs, and wall/CPU time per payment over `n` sequential payments."""
    import cProfile
    import io
    import pstats
    from collections import Counter

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret_key}")
    card = {
        "type": "card",
        "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        "billing_details": {"name": "Bench Buyer", "email": "bench@example.com"},
    }

    def tokenize() -> str:
        response = client.post("/v1/payment_methods", card, content_type="application/json")
        assert response.status_code == 201, response.content
        return response.json()["id"]

    def pay(pm: str, key: str | None):
        headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
        response = client.post(
            "/v1/payment_intents",
            {
                "amount": 2000,
                "currency": "eur",
                "capture_method": "automatic",
                "payment_method": pm,
                "confirm": True,
                "order_id": "bench-profile",
            },
            content_type="application/json",
            **headers,
        )
        assert response.status_code == 200 and response.json()["status"] == "succeeded", (
            response.status_code,
            response.content[:300],
        )

    for _ in range(20):  # warm caches, sessions, prepared plans
        pay(tokenize(), os.urandom(8).hex())

    # captured_queries slices connection.queries lazily, and the next request outside a
    # capture resets them: copy each list as soon as its block ends
    with CaptureQueriesContext(connection) as captured:
        pm = tokenize()
    tok_queries = list(captured.captured_queries)
    with CaptureQueriesContext(connection) as captured, _PsycopgStatements() as statements:
        pay(pm, os.urandom(8).hex())
    pay_queries = list(captured.captured_queries)
    pm = tokenize()
    with CaptureQueriesContext(connection) as captured:
        pay(pm, None)
    pay_noidem_queries = list(captured.captured_queries)

    breakdown = Counter(_normalize_sql(q["sql"]) for q in pay_queries)

    pms = [tokenize() for _ in range(n)]
    keys = [os.urandom(8).hex() for _ in range(n)]
    profiler = cProfile.Profile(time.process_time) if cprofile_out else None
    ledger = _LedgerTimer()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    with ledger:
        for pm, key in zip(pms, keys, strict=True):
            pay(pm, key)
    if profiler:
        profiler.disable()
    wall = (time.perf_counter() - wall0) / n * 1000
    cpu = (time.process_time() - cpu0) / n * 1000
    if profiler and cprofile_out:
        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(30)
        cprofile_out.write_text(stream.getvalue())
        profiler.dump_stats(cprofile_out.with_suffix(".prof"))  # for pstats' callers view
    return {
        "queries_tokenize": len(tok_queries),
        "queries_create_confirm": len(pay_queries),
        "queries_create_confirm_without_idempotency_key": len(pay_noidem_queries),
        "transactions_create_confirm": breakdown.get("BEGIN", 0),
        # statements on the wire (psycopg level): Django's minus BEGIN/COMMIT/SAVEPOINT lines,
        # plus what bypasses Django's cursor (the ledger's prepared statements)
        "statements_create_confirm_psycopg": statements.count,
        "query_breakdown": dict(breakdown.most_common()),
        "query_sequence": [_normalize_sql(q["sql"]) for q in pay_queries],
        "sequential_payments": n,
        "in_process_wall_ms_per_payment": round(wall, 2),
        "in_process_cpu_ms_per_payment": round(cpu, 2),
        # the ledger's share of a payment: time inside the checkout plane's ledger hooks (the
        # capture posting, its statements included), what turning postings off would save
        "ledger_wall_ms_per_payment": round(ledger.wall / n * 1000, 2),
        "ledger_cpu_ms_per_payment": round(ledger.cpu / n * 1000, 2),
        "ledger_share_of_wall_pct": round(ledger.wall / n * 1000 / wall * 100, 1),
        "note": "Django test client in one thread, with cProfile on"
        if profiler
        else "Django test client in one thread",
    }


# --------------------------------------------------------------------------- scenarios


def psp_times(intent_ids: list[str]) -> dict[str, tuple[int, int]]:
    """{intent public id: (sum of attempt latency_ms, attempts)} from the database."""
    from django.db.models import Count, Sum

    from apps.intents.models import PaymentAttempt

    found: dict[str, tuple[int, int]] = {}
    for start in range(0, len(intent_ids), 2000):
        chunk = intent_ids[start : start + 2000]
        rows = (
            PaymentAttempt.objects.filter(intent__public_id__in=chunk)
            .values("intent__public_id")
            .annotate(psp=Sum("latency_ms"), n=Count("id"))
        )
        for row in rows:
            found[row["intent__public_id"]] = (row["psp"] or 0, row["n"])
    return found


def run_scenario(name: str, *, args, seeded: dict, clients: int) -> dict:
    spec = SCENARIOS[name]
    set_faults(args.sim_url, spec["faults"])
    background, consumers = background_busy()
    waited = 0.0
    while background > QUIET_BUSY_PCT and waited < args.quiet_wait:
        time.sleep(1.0)  # a shared machine: give a passing workload the chance to finish
        waited += 2.5
        background, consumers = background_busy()
    speed = python_speed_s()
    if background > QUIET_BUSY_PCT:
        tops = "; ".join(f"{cmd} {pct_}%" for cmd, pct_ in consumers) or "no process visible"
        print(
            f"  warning: the machine is {background}% busy before the run: figures will be "
            f"low (top: {tops})",
            flush=True,
        )
    out = Path(args.workdir) / f"loadgen-{name}.json"
    floor = spec.get("floor", False)
    command = [
        sys.executable,
        str(ROOT / "bench" / "loadgen.py"),
        "--base-url",
        args.floor_url if floor else args.api_url,
        "--api-key",
        seeded["secret_key"],
        "--scenario",
        name,
        "--clients",
        str(clients),
        "--warmup",
        str(args.warmup),
        "--duration",
        str(args.duration),
        "--out",
        str(out),
        "--cpu-db",
        args.db_name,
    ]
    # the floor's CPU is its own gunicorn's (the platform's stack idles meanwhile)
    for group in [args.floor_cpu_group] if floor else args.cpu_group:
        command += ["--cpu-group", group]
    if spec.get("open"):
        command += ["--rate", str(args.rate_open)]
    print(
        f"  {spec['title']}: {clients} {'in flight at most' if spec.get('open') else 'clients'}"
        f", warm-up {args.warmup:g} s, "
        f"timed {args.duration:g} s …",
        flush=True,
    )
    spies = []
    if args.pyspy and name == "A":
        from bench import pyspy_top

        web = [g.split("=", 1)[1] for g in args.cpu_group if g.startswith("web=")]
        pids = pyspy_top.workers_of(int(web[0])) if web else []
        spies = pyspy_top.record(pids, args.warmup + args.duration, RESULTS)
    subprocess.run(command, check=True)
    for spy in spies:
        spy.wait(timeout=60)
    if spies:
        from bench import pyspy_top

        # every request the workers served during A (the load generator tokenizes its cards
        # untimed, before and between the timed windows), then the payments' alone; the raw
        # stacks stay in bench/results/pyspy-<pid>.txt
        files = sorted(RESULTS.glob("pyspy-*.txt"))
        (RESULTS / "payments_pyspy.txt").write_text(
            pyspy_top.summary(files)
            + "\n"
            + pyspy_top.summary(files, only="PaymentIntentListCreateApi.post")
        )
    raw = json.loads(out.read_text())
    samples = raw.pop("samples")
    set_faults(args.sim_url, None)

    ok = [s for s in samples if s[2] == 200 and s[3] == "succeeded"]
    errors: dict[str, int] = {}
    for s in samples:
        if not (s[2] == 200 and s[3] == "succeeded"):
            label = f"{s[2]} {s[3]}"
            errors[label] = errors.get(label, 0) + 1
    latencies = [s[1] for s in ok]
    elapsed = raw["elapsed_s"]
    result = {
        "scenario": name,
        "title": spec["title"],
        "open_loop_rate_per_s": args.rate_open if spec.get("open") else None,
        "background_busy_pct_before": background,
        "background_top_processes": consumers,
        "waited_for_quiet_s": waited,
        "python_loop_10m_s_before": speed,
        "psp_faults": spec["faults"] or {"latency_ms": 0},
        "clients": clients,
        "payments": len(ok),
        "requests": len(samples),
        "errors": errors,
        "seconds": elapsed,
        "payments_per_s": round(len(ok) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": pct(latencies, 50),
        "p95_ms": pct(latencies, 95),
        "p99_ms": pct(latencies, 99),
        "max_ms": round(max(latencies), 2) if latencies else None,
        "mean_ms": round(statistics.fmean(latencies), 2) if latencies else None,
    }
    # the orchestrator's own share: client-observed total minus the PSP time of the attempts
    times = psp_times([s[4] for s in ok if s[4]])
    overhead, psp = [], []
    multi = 0
    for s in ok:
        found = times.get(s[4])
        if found is None:
            continue
        psp.append(found[0])
        overhead.append(s[1] - found[0])
        multi += found[1] > 1
    result.update(
        {
            "psp_p50_ms": pct(psp, 50),
            "psp_p95_ms": pct(psp, 95),
            "overhead_p50_ms": pct(overhead, 50),
            "overhead_p95_ms": pct(overhead, 95),
            "overhead_p99_ms": pct(overhead, 99),
            "overhead_samples": len(overhead),
            "payments_with_failover": multi,
        }
    )
    cpu = raw.pop("cpu_seconds")
    known = sum(v for k, v in cpu.items() if k not in ("machine", "machine_total"))
    per_payment = {
        k: round(v / len(ok) * 1000, 2)
        for k, v in cpu.items()
        if k not in ("machine", "machine_total") and ok
    }
    if ok:
        # kernel time not charged to a process (loopback networking), PostgreSQL's background
        # writers, and any other workload on the machine
        per_payment["unattributed"] = round(max(0.0, cpu["machine"] - known) / len(ok) * 1000, 2)
        per_payment["machine_total"] = round(cpu["machine"] / len(ok) * 1000, 2)
    result["cpu_ms_per_payment"] = per_payment
    own = sum(v for k, v in per_payment.items() if k not in ("unattributed", "machine_total"))
    # what the stack would reach with the whole machine to itself, CPU being the bound
    result["cpu_bound_ceiling_per_s"] = (
        round((os.cpu_count() or 1) * 1000 / own, 1) if own else None
    )
    result["machine_cpu_busy_pct"] = (
        round(cpu["machine"] / cpu["machine_total"] * 100, 1) if cpu.get("machine_total") else None
    )
    result["loadgen"] = {
        k: raw[k]
        for k in (
            "warmup_s",
            "warmup_rate_per_s",
            "tokens_fresh",
            "pm_reused",
            "tokenize_s",
            "connection_resends",
            "idempotency_key",
        )
    }
    result["cpu_ms_per_payment_stack"] = round(own, 2) if ok else None
    targets = TARGETS[name]
    figures = {**result, "cpu_ms_per_payment": result["cpu_ms_per_payment_stack"]}
    checks = {
        k: (figures[k] is not None and figures[k] <= v)
        for k, v in targets.items()
        if k != "payments_per_s"
    }
    if "payments_per_s" in targets:
        checks["payments_per_s"] = result["payments_per_s"] >= targets["payments_per_s"]
    result["targets"] = targets
    result["met"] = checks
    result["verdict"] = "met" if all(checks.values()) and not errors else "missed"
    return result


def add_floor_ratios(results: list[dict]) -> None:
    """Each scenario's throughput and CPU per payment as a multiple of the floor's, measured in
    the same run: the figure that does not move with the host's speed."""
    floor = next((r for r in results if r["scenario"] == "F"), None)
    if not floor or not floor["payments_per_s"] or not floor["cpu_ms_per_payment_stack"]:
        return
    for r in results:
        r["floor_ratio"] = {
            "payments_per_s": round(r["payments_per_s"] / floor["payments_per_s"], 3),
            "cpu_ms_per_payment": (
                round(r["cpu_ms_per_payment_stack"] / floor["cpu_ms_per_payment_stack"], 2)
                if r["cpu_ms_per_payment_stack"]
                else None
            ),
        }


def print_table(results: list[dict], prof: dict | None) -> None:
    header = (
        f"{'scenario':<30} {'clients':>7} {'payments':>8} {'pay/s':>7} {'p50':>7} "
        f"{'p95':>7} {'p99':>7} {'ovh p50':>7} {'ovh p95':>7} {'errors':>6}  target"
    )
    print()
    print(header)
    print("-" * len(header))
    for r in results:
        t = r["targets"]
        goal = (
            ", ".join(
                ([f">= {t['payments_per_s']}/s"] if "payments_per_s" in t else [])
                + [
                    f"{k.replace('_ms', '').replace('_per_payment', '/payment')} <= {v} ms"
                    for k, v in t.items()
                    if k != "payments_per_s"
                ]
            )
            or "(the floor)"
        )

        def f(v):
            return "-" if v is None else f"{v:.1f}"

        print(
            f"{r['title']:<30} {r['clients']:>7} {r['payments']:>8} "
            f"{r['payments_per_s']:>7.1f} {f(r['p50_ms']):>7} {f(r['p95_ms']):>7} "
            f"{f(r['p99_ms']):>7} {f(r['overhead_p50_ms']):>7} {f(r['overhead_p95_ms']):>7} "
            f"{sum(r['errors'].values()):>6}  {goal}: {r['verdict'].upper()}"
        )
    print("(latencies in ms, client-observed; ovh = total minus PSP time from the attempts)")
    print()
    print("CPU ms per payment (timed window):")
    for r in results:
        cpu = r["cpu_ms_per_payment"]
        parts = "  ".join(f"{k} {v}" for k, v in cpu.items())
        ratio = r.get("floor_ratio")
        versus = (
            f"; x floor: {ratio['payments_per_s']} of its payments/s, "
            f"{ratio['cpu_ms_per_payment']} x its CPU per payment"
            if ratio and r["scenario"] != "F"
            else ""
        )
        print(
            f"  {r['scenario']}: {parts}  | stack {r['cpu_ms_per_payment_stack']} ms; machine "
            f"busy {r['machine_cpu_busy_pct']}% of {os.cpu_count()} CPUs; CPU-bound ceiling "
            f"{r['cpu_bound_ceiling_per_s']}/s{versus}"
        )
        for label, count in r["errors"].items():
            print(f"     errors: {count} x {label}")
        if any(label.startswith("5") for label in r["errors"]):
            print("     server errors: see bench/results/logs/web.log")
        lg = r["loadgen"]
        if lg["pm_reused"]:
            print(f"     note: {lg['pm_reused']} payments reused a payment method (batch ran out)")
    if prof:
        print()
        print(
            f"Per payment, in-process profile: {prof['queries_create_confirm']} SQL queries "
            f"(Django's count, with BEGIN/COMMIT; {prof['statements_create_confirm_psycopg']} "
            f"statements on the wire incl. raw cursors) for create+confirm with Idempotency-Key "
            f"({prof['queries_create_confirm_without_idempotency_key']} without), "
            f"{prof['queries_tokenize']} for tokenization; "
            f"{prof['in_process_cpu_ms_per_payment']} ms Python CPU, "
            f"{prof['in_process_wall_ms_per_payment']} ms wall (one thread, "
            f"{prof['sequential_payments']} payments)"
        )
        print("  " + ", ".join(f"{k} x{v}" for k, v in prof["query_breakdown"].items()))
        if "ledger_wall_ms_per_payment" in prof:
            print(
                f"  ledger postings: {prof['ledger_wall_ms_per_payment']} ms wall, "
                f"{prof['ledger_cpu_ms_per_payment']} ms Python CPU per payment = "
                f"{prof['ledger_share_of_wall_pct']} % of the payment's time (the throughput "
                "that turning postings off could give back; the issue allows 15 %)"
            )


def run(args) -> int:
    seeded = seed(args.sim_url)
    from django.db import connection

    print(
        f"seeded: merchant {seeded['merchant']}, connector {seeded['connector']} -> "
        f"{args.sim_url}/stripe/{SIM_CONNECTOR}",
        flush=True,
    )
    set_faults(args.sim_url, None)
    speed = python_speed_s()
    print(
        f"  machine: {os.cpu_count()} CPUs, pure-Python probe {speed} s "
        "(10M-iteration loop; a recent desktop core does it in ~0.35 s)",
        flush=True,
    )
    prof = None
    if args.profile_payments > 0:
        print(
            f"  profile: queries and CPU of one payment, in-process "
            f"({args.profile_payments} payments) …",
            flush=True,
        )
        prof = profile(
            secret_key=seeded["secret_key"],
            n=args.profile_payments,
            cprofile_out=RESULTS / "payments_cprofile.txt" if args.cprofile else None,
        )
    results = []
    for name in args.scenarios:
        clients = {
            "F": args.clients_a,
            "A": args.clients_a,
            "A1": 1,
            "B": args.clients_b,
            "Bo": args.clients_open,
        }[name]
        if name == "F" and not args.floor_url:
            print("  F skipped: no --floor-url (scripts/bench.sh starts the floor)", flush=True)
            continue
        results.append(run_scenario(name, args=args, seeded=seeded, clients=clients))
        connection.close()
    add_floor_ratios(results)
    print_table(results, prof)

    report = {
        "benchmark": "payment path: create+confirm (automatic capture) through the API",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {**machine_info(), "python_loop_10m_s": speed},
        "stack": json.loads(args.stack_json) if args.stack_json else {},
        "database": args.db_name,
        "profile": prof,
        "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "payments.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)}")
    return 0


# --------------------------------------------------------------------------- summary


FIGURE_KEY = re.compile(r"(_per_s|(^|_)p(50|95|99)_(ms|us))$")


def summary(since: float) -> int:
    """Every result file written since `since`: one line per scenario, whatever its keys."""
    files = sorted(
        (p for p in RESULTS.glob("*.json") if p.stat().st_mtime >= since),
        key=lambda p: (p.name != "payments.json", p.name),
    )
    if not files:
        print("no benchmark results written in this run")
        return 0
    print()
    print("=" * 78)
    print("make bench: summary")
    print("=" * 78)
    for path in files:
        try:
            data = json.loads(path.read_text())
        except ValueError:
            print(f"{path.name}: unreadable")
            continue
        print(f"{path.name}: {data.get('benchmark', '')}")
        rows = data.get("results") if isinstance(data, dict) else None
        if not isinstance(rows, list):
            print("  (no 'results' list)")
            continue
        for row in rows:
            if not isinstance(row, dict):
                continue
            label = row.get("title") or row.get("scenario") or row.get("name") or "?"
            figures = []
            for key, value in row.items():
                if isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                if FIGURE_KEY.search(key):
                    figures.append(f"{key} {value}")
            verdict = row.get("verdict", "")
            print(f"  {label:<32} {', '.join(figures)}  {str(verdict).upper()}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_seed = sub.add_parser("seed")
    p_seed.add_argument("--sim-url", required=True)
    p_run = sub.add_parser("run")
    p_run.add_argument("--api-url", required=True)
    p_run.add_argument("--sim-url", required=True)
    p_run.add_argument("--db-name", required=True)
    p_run.add_argument("--workdir", required=True)
    p_run.add_argument(
        "--scenarios", nargs="+", default=["F", "A", "A1", "B", "Bo"], choices=list(SCENARIOS)
    )
    p_run.add_argument("--clients-a", type=int, default=8)
    p_run.add_argument("--clients-b", type=int, default=64)
    p_run.add_argument("--clients-open", type=int, default=128, help="Bo: most in flight")
    p_run.add_argument("--rate-open", type=float, default=120.0, help="Bo: arrivals per second")
    p_run.add_argument("--floor-url", default="", help="the raw-SQL floor's gunicorn (F)")
    p_run.add_argument("--floor-cpu-group", default="", help="web=<floor gunicorn pid>")
    p_run.add_argument("--warmup", type=float, default=5)
    p_run.add_argument("--duration", type=float, default=20)
    p_run.add_argument("--profile-payments", type=int, default=100)
    p_run.add_argument(
        "--quiet-wait",
        type=float,
        default=20,
        help="seconds a scenario may wait for the machine to be quiet",
    )
    p_run.add_argument("--cprofile", action="store_true")
    p_run.add_argument("--pyspy", action="store_true", help="py-spy the API workers during A")
    p_run.add_argument("--cpu-group", action="append", default=[])
    p_run.add_argument("--stack-json", default="")
    p_sum = sub.add_parser("summary")
    p_sum.add_argument("--since", type=float, default=0)
    args = parser.parse_args()

    if args.command == "seed":
        print(json.dumps(seed(args.sim_url)))
        return 0
    if args.command == "run":
        _django()
        return run(args)
    return summary(args.since)


if __name__ == "__main__":
    sys.exit(main())
