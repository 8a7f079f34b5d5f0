"""Webhooks benchmark: both directions.

(a) inbound: PSP webhook acknowledgement latency at a steady 200 webhooks/s (open loop: each
    request is sent at its scheduled time whether or not earlier ones have answered) against
    gunicorn with a psycopg pool, signed Stripe events: store raw, verify, de-duplicate,
    publish to Celery, answer. Target p99 < 30 ms with the production shape (gunicorn.conf.py's
    default, 2 processes x 8 threads); 4 x 4 is measured too, for information (more processes
    than cores measured worse: the four contend for two cores with the worker and PostgreSQL).
(b) outbound: merchant webhook fan-out to a local receiver with ONE Celery worker process
    (threads pool): outbox rows -> relay -> deliveries -> signed HTTP POSTs -> recorded
    attempts, measured from the commit of the outbox rows to the last webhook received.
    Target >= 500 deliveries/s.

Own database (default `payments_platform_webhooks_bench`, recreated each run; override with
WEBHOOKS_BENCH_DATABASE_URL) and own Redis database (WEBHOOKS_BENCH_REDIS_URL, default db 11),
so demo data and a running `make run` stay untouched. Everything it starts, it stops.

    .venv/bin/python bench/webhooks_bench.py [--rate 200] [--seconds 15] [--events 600]

Prints a table and writes bench/results/webhooks.json.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
LOGS = RESULTS / "logs"

DATABASE_URL = os.environ.get(
    "WEBHOOKS_BENCH_DATABASE_URL",
    "postgres://postgres@127.0.0.1:5432/payments_platform_webhooks_bench",
)
REDIS_URL = os.environ.get("WEBHOOKS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
os.environ.update(
    {
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "CELERY_BROKER_URL": REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "payments_platform.settings.base",
        "LOG_LEVEL": os.environ.get("WEBHOOKS_BENCH_LOG_LEVEL", "WARNING"),
        "DEBUG": "0",
    }
)

import django  # noqa: E402
import psycopg  # noqa: E402
import redis  # noqa: E402

STRIPE_SECRET = "whsec_webhooks_bench"
TARGET_ACK_P99_MS = 30.0
TARGET_DELIVERIES_PER_S = 500.0
CLIENT_THREADS = int(os.environ.get("WEBHOOKS_BENCH_CLIENT_THREADS", "16"))
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def recreate_database() -> None:
    parts = urlsplit(DATABASE_URL)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    redis.Redis.from_url(REDIS_URL).flushdb()
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed():
    from apps.connectors import services as connector_services
    from apps.core.audit import Actor
    from apps.merchants import services as merchant_services

    actor = Actor.system("webhooks_bench")
    merchant = merchant_services.merchant_create(name="Webhooks Bench", actor=actor)
    connector = connector_services.connector_create(
        merchant=merchant,
        livemode=False,
        name="bench-stripe",
        connector_type="stripe",
        endpoint="simulator",
        simulator_account="bench",
        credentials={"api_key": "sk_test_bench", "webhook_secret": STRIPE_SECRET},
        supported_currencies=["eur"],
        actor=actor,
    )
    return merchant, connector


def child_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "DB_POOL": "1", "PYTHONUNBUFFERED": "1", **extra}


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def machine_load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def wait_for_quiet(max_wait: float, threshold: float) -> float:
    """CHECKPOINT, then (bounded) until the machine is quiet: see procstat.wait_for_quiet."""
    sys.path.insert(0, str(ROOT / "bench"))
    import procstat
    from django.db import connection

    def checkpoint() -> None:
        with connection.cursor() as cursor:
            cursor.execute("CHECKPOINT")

    return procstat.wait_for_quiet(max_wait, threshold, before=checkpoint)


# --------------------------------------------------------------------------- (a) inbound


def signed_stripe_event(index: int) -> tuple[bytes, str]:
    from apps.psp_simulator.signing import stripe_signature_header

    event = {
        "id": f"evt_bench_{index}_{secrets.token_hex(6)}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "type": "payment_intent.succeeded",
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": f"req_{secrets.token_hex(8)}", "idempotency_key": None},
        "data": {
            "object": {
                "id": f"pi_bench_{index}",
                "object": "payment_intent",
                "amount": 2000,
                "amount_received": 2000,
                "amount_capturable": 0,
                "currency": "eur",
                "capture_method": "automatic",
                "status": "succeeded",
                "latest_charge": f"ch_bench_{index}",
                "payment_method": "pm_card_visa",
                "metadata": {"attempt_id": f"pa_bench_{index}", "payment_intent": f"pi_x{index}"},
                "description": "bench order " + "x" * 400,
            }
        },
    }
    body = json.dumps(event, indent=2).encode()
    return body, stripe_signature_header(body, STRIPE_SECRET, int(time.time()))


def run_inbound(
    connector,
    *,
    rate: float,
    seconds: float,
    warmup_seconds: float,
    workers: int,
    threads: int,
    informative: bool = False,
) -> dict:
    port = free_port()
    LOGS.mkdir(parents=True, exist_ok=True)
    log = open(LOGS / "webhooks-bench-gunicorn.log", "wb")  # noqa: SIM115
    web = subprocess.Popen(
        [str(BIN / "gunicorn"), "payments_platform.wsgi", "-c", "gunicorn.conf.py"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=child_env(
            API_BIND=f"127.0.0.1:{port}",
            WEB_WORKERS=str(workers),
            WEB_THREADS=str(threads),
            DB_POOL_MIN="2",
            DB_POOL_MAX=str(threads),
            LOG_LEVEL="WARNING",
        ),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or web.poll() is not None:
                raise RuntimeError("gunicorn did not start; see bench/results/logs")
            time.sleep(0.3)
        path = f"/webhooks/psp/{connector.public_id}"
        warm = int(rate * warmup_seconds)
        total = warm + int(rate * seconds)
        requests = [signed_stripe_event(i) for i in range(total)]
        local = threading.local()

        def send(item: tuple[bytes, str]) -> tuple[float, int]:
            body, signature = item
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            start = time.perf_counter()
            try:
                conn.request(
                    "POST",
                    path,
                    body=body,
                    headers={
                        "Content-Type": "application/json; charset=utf-8",
                        "Stripe-Signature": signature,
                        "User-Agent": "Stripe/1.0",
                    },
                )
                response = conn.getresponse()
                response.read()
                status = response.status
            except OSError:
                local.conn = None
                status = 0
            return (time.perf_counter() - start) * 1000, status

        futures = []
        with ThreadPoolExecutor(max_workers=CLIENT_THREADS) as pool:
            t0 = time.perf_counter()
            for index, item in enumerate(requests):
                due = t0 + index / rate
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                futures.append(pool.submit(send, item))
            results = [f.result() for f in futures]
            elapsed = time.perf_counter() - t0
        measured = results[warm:]
        latencies = [ms for ms, _ in measured]
        errors = sum(1 for _, status in measured if status != 200)
    finally:
        stop(web)
        log.close()
    from apps.events.models import InboundWebhook

    stored = InboundWebhook.objects.filter(status="pending").count()
    InboundWebhook.objects.all().delete()  # the next run starts from the same table size
    p99 = round(percentile(latencies, 99), 2)
    verdict = "PASS" if p99 < TARGET_ACK_P99_MS and errors == 0 else "FAIL"
    return {
        "scenario": f"inbound_ack_{workers}x{threads}",
        "title": f"PSP webhook ack {rate:g}/s, {workers}x{threads}",
        "requests": len(measured),
        "offered_per_s": rate,
        "achieved_per_s": round(total / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "p99_ms": p99,
        "max_ms": round(max(latencies), 2),
        "mean_ms": round(statistics.fmean(latencies), 2),
        "errors": errors,
        "stored_pending": stored,
        "stack": f"gunicorn {workers} x {threads} threads, psycopg pool, Redis broker",
        "target": "(informative)" if informative else f"p99 < {TARGET_ACK_P99_MS:g} ms",
        "verdict": "" if informative else verdict,
    }


# --------------------------------------------------------------------------- (b) fan-out


class Receiver:
    """A minimal HTTP/1.1 keep-alive endpoint (asyncio, own thread) that counts webhooks."""

    def __init__(self) -> None:
        self.port = free_port()
        self.count = 0
        self.seen: set[tuple[str, str]] = set()
        self.duplicates = 0
        self.last_at = 0.0
        self.samples: list[tuple[str, dict, bytes]] = []
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=512)
        )
        self._server = server
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader, writer) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                path = line.split(b" ")[1].decode()
                headers = {}
                while True:
                    raw = await reader.readline()
                    if raw in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = raw.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                key = (path, headers.get("webhook-id", ""))
                if key in self.seen:
                    self.duplicates += 1
                else:
                    self.seen.add(key)
                    self.count += 1
                    self.last_at = time.perf_counter()
                    if len(self.samples) < 20:
                        self.samples.append((path, headers, body))
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)


def start_worker(concurrency: int) -> tuple[subprocess.Popen, object]:
    LOGS.mkdir(parents=True, exist_ok=True)
    log = open(LOGS / "webhooks-bench-worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [
            str(BIN / "celery"),
            "-A",
            "payments_platform",
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            str(concurrency),
            "--queues",
            "celery",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=child_env(DB_POOL_MIN="2", DB_POOL_MAX=str(concurrency + 2)),
    )
    from payments_platform.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError("the Celery worker exited; see bench/results/logs")
        try:
            if app.control.ping(timeout=0.5):
                return worker, log
        except Exception:  # noqa: S110 - broker not answering yet
            pass
        time.sleep(0.3)
    raise RuntimeError("the Celery worker did not answer a ping")


def publish_events(merchant, count: int, tag: str) -> float:
    """Outbox rows as the services write them, committed at once; returns the commit time."""
    from django.db import transaction

    from apps.events.models import OutboxEvent
    from apps.events.services import outbox_relay_schedule

    rows = [
        OutboxEvent(
            merchant_id=merchant.id,
            livemode=False,
            object_type="payment_intent",
            object_id=f"pi_{tag}_{i}",
            sequence=1,
            event_type="payment_intent.succeeded",
            payload={
                "id": f"pi_{tag}_{i}",
                "object": "payment_intent",
                "amount": 2000,
                "currency": "eur",
                "status": "succeeded",
                "amount_received": 2000,
                "metadata": {"order": str(i)},
                "description": "bench " + "y" * 300,
            },
            previous_attributes={"status": "processing"},
        )
        for i in range(count)
    ]
    with transaction.atomic():
        OutboxEvent.objects.bulk_create(rows)
        outbox_relay_schedule()  # exactly what outbox_record does: one relay task on commit
    return time.perf_counter()


def wait_for(receiver: Receiver, expected: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while receiver.count < expected:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def run_fanout(merchant, *, endpoints: int, events: int, concurrency: int) -> dict:
    from standardwebhooks import Webhook

    from apps.core.audit import Actor
    from apps.events.models import WebhookDelivery
    from apps.events.services import webhook_endpoint_create

    receiver = Receiver()
    secrets_by_path = {}
    for index in range(endpoints):
        issued = webhook_endpoint_create(
            merchant=merchant,
            livemode=False,
            url=f"http://127.0.0.1:{receiver.port}/ep{index}",
            enabled_events=["*"],
            actor=Actor.system("webhooks_bench"),
        )
        secrets_by_path[f"/ep{index}"] = issued.secret
    worker, log = start_worker(concurrency)
    try:
        publish_events(merchant, 50, "warmup")
        if not wait_for(receiver, 50 * endpoints, 60):
            raise RuntimeError("warm-up deliveries did not arrive")
        before = receiver.count
        expected = events * endpoints
        t0 = publish_events(merchant, events, "run")
        complete = wait_for(receiver, before + expected, 180)
        elapsed = receiver.last_at - t0
        received = receiver.count - before
        deadline = time.monotonic() + 20
        while (
            WebhookDelivery.objects.exclude(status="succeeded").exists()
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)
        unrecorded = WebhookDelivery.objects.exclude(status="succeeded").count()
    finally:
        stop(worker)
        log.close()
        receiver.stop()
    verified = 0
    for path, headers, body in receiver.samples:
        Webhook(secrets_by_path[path]).verify(body, headers)
        verified += 1
    per_s = round(received / elapsed, 1) if elapsed > 0 else 0.0
    ok = complete and unrecorded == 0 and receiver.duplicates == 0
    return {
        "scenario": "fanout",
        "title": f"fan-out, {events} events x {endpoints} endpoints",
        "deliveries": received,
        "seconds": round(elapsed, 2),
        "deliveries_per_s": per_s,
        "duplicates_received": receiver.duplicates,
        "not_recorded_succeeded": unrecorded,
        "signatures_verified": verified,
        "worker": f"1 Celery process, threads pool x {concurrency}",
        "target": f">= {TARGET_DELIVERIES_PER_S:g} deliveries/s",
        "verdict": "PASS" if ok and per_s >= TARGET_DELIVERIES_PER_S else "FAIL",
    }


# --------------------------------------------------------------------------- main


def print_table(results: list[dict]) -> None:
    print()
    print(f"{'scenario':<38} {'figure':<34} {'target':<24} verdict")
    print("-" * 104)
    for row in results:
        if row["scenario"].startswith("inbound_ack"):
            figure = f"p50 {row['p50_ms']} / p95 {row['p95_ms']} / p99 {row['p99_ms']} ms"
        else:
            figure = f"{row['deliveries_per_s']} deliveries/s ({row['deliveries']})"
        print(f"{row['title']:<38} {figure:<34} {row['target']:<24} {row['verdict']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=20,
        help="seconds to wait (at most) for the machine to be quiet before a scenario",
    )
    parser.add_argument("--quiet-load", type=float, default=1.5)
    args = parser.parse_args()

    print(
        f"webhooks bench: database {urlsplit(DATABASE_URL).path.lstrip('/')} recreated, "
        f"broker {REDIS_URL}"
    )
    recreate_database()
    merchant, connector = seed()
    load_before = machine_load()
    results = []
    # Priming, untimed: on a database created seconds ago the inbound tables are empty and have
    # no statistics, so whichever scenario ran first paid for the tables' growth and the
    # planner's first guesses (its p99 came out 2-3x the second's, whatever the shape). Run the
    # path once, then give PostgreSQL its statistics, as any running system has them.
    print("(a) priming the inbound path (untimed) …", flush=True)
    run_inbound(
        connector,
        rate=args.rate,
        seconds=3,
        warmup_seconds=0,
        workers=2,
        threads=8,
        informative=True,
    )
    from django.db import connection

    from apps.events.models import InboundWebhook, InboundWebhookClaim

    with connection.cursor() as cursor:
        for model in (InboundWebhook, InboundWebhookClaim):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    # 2 x 8 is the production shape (gunicorn.conf.py, `make run`); 4 x 4 for comparison
    for workers, threads, informative in ((2, 8, False), (4, 4, True)):
        print(
            f"(a) inbound: {args.rate:g} signed PSP webhooks/s for {args.seconds:g} s, "
            f"gunicorn {workers} x {threads} …",
            flush=True,
        )
        load = wait_for_quiet(args.quiet_wait, args.quiet_load)
        results.append(
            run_inbound(
                connector,
                rate=args.rate,
                seconds=args.seconds,
                warmup_seconds=args.warmup,
                workers=workers,
                threads=threads,
                informative=informative,
            )
            | {"load_1m_at_start": load}
        )
    redis.Redis.from_url(REDIS_URL).flushdb()  # the (a) processing tasks nobody consumes
    print(f"(b) fan-out: {args.events} events x {args.endpoints} endpoints …", flush=True)
    load = wait_for_quiet(args.quiet_wait, args.quiet_load)
    results.append(
        run_fanout(
            merchant, endpoints=args.endpoints, events=args.events, concurrency=args.concurrency
        )
        | {"load_1m_at_start": load}
    )
    redis.Redis.from_url(REDIS_URL).flushdb()
    print_table(results)
    report = {
        "benchmark": "webhooks: inbound PSP acknowledgement and merchant fan-out",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "database": urlsplit(DATABASE_URL).path.lstrip("/"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": machine_load(),
        "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "webhooks.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
