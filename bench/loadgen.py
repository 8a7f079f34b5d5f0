"""HTTP load generator for the payment path (stdlib only: threads + http.client).

Runs in its own process, started by bench/payments_bench.py. Closed loop (default): N client
threads, each with one keep-alive connection, send create+confirm requests back to back.
Open loop (--rate R): payments arrive at R per second (Poisson arrivals, seeded), whatever the
server's speed, and are sent by up to N threads; each latency counts from the payment's
scheduled arrival, not from when a thread got to send it, so time spent queueing behind a slow
server is in the figures (no coordinated omission). Requests:

    POST /v1/payment_intents  {"amount", "currency", "capture_method": "automatic",
                               "payment_method": "pm_…", "confirm": true, "order_id"}
    with an Idempotency-Key header (as a real merchant integration sends it)

Phases:
1. tokenize a first batch of cards (POST /v1/payment_methods), untimed;
2. warm-up for --warmup seconds (connections, pools, caches); its rate sizes the next batch;
3. tokenize enough fresh cards for the timed run (rate x duration x 1.3), untimed;
4. the timed run: --duration seconds; CPU of the stack is sampled at its start and end.

Every payment uses a fresh `pm_…` (one CVC, one first authorization), as in production. Should
the timed run outpace the batch, cards are reused and the count is reported (`pm_reused`).

Writes one JSON document (--out): per-request samples
[start offset s, latency ms, HTTP status, intent status, intent id], counts, and CPU seconds
per process group.
"""

from __future__ import annotations

import argparse
import collections
import functools
import http.client
import json
import math
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
import procstat

CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}


class Client:
    """One keep-alive HTTP/1.1 connection. A request that fails on a connection the server has
    closed meanwhile (keep-alive timeout between phases) is sent once more on a new one: safe,
    every POST carries an Idempotency-Key."""

    def __init__(self, base_url: str, api_key: str):
        parsed = urlparse(base_url)
        self.host, self.port = parsed.hostname, parsed.port or 80
        self.headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self.conn: http.client.HTTPConnection | None = None
        self.resends = 0

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def post(self, path: str, payload: dict, idempotency_key: str | None) -> tuple[int, bytes]:
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = dict(self.headers)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                self.conn.request("POST", path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                return response.status, data
            except (http.client.HTTPException, ConnectionError, OSError):
                self.close()
                if attempt == 2:
                    raise
                self.resends += 1
        raise AssertionError("unreachable")


class TokenSupply:
    """Fresh payment method tokens, handed out once each; reused round-robin when exhausted."""

    def __init__(self):
        self._fresh: collections.deque[str] = collections.deque()
        self._used: list[str] = []
        self._lock = threading.Lock()
        self.reused = 0

    def add(self, tokens: list[str]) -> None:
        with self._lock:
            self._fresh.extend(tokens)

    def take(self) -> str:
        with self._lock:
            if self._fresh:
                token = self._fresh.popleft()
                self._used.append(token)
                return token
            self.reused += 1
            return self._used[self.reused % len(self._used)]

    def fresh_left(self) -> int:
        with self._lock:
            return len(self._fresh)


def tokenize(base_url: str, api_key: str, count: int, threads: int) -> list[str]:
    tokens: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()
    remaining = [count]

    def work() -> None:
        client = Client(base_url, api_key)
        try:
            while True:
                with lock:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                status, data = client.post(
                    "/v1/payment_methods",
                    {
                        "type": "card",
                        "card": CARD,
                        "billing_details": {"name": "Bench Buyer", "email": "bench@example.com"},
                    },
                    idempotency_key=None,
                )
                if status != 201:
                    with lock:
                        errors.append(f"{status} {data[:200]!r}")
                    continue
                token = json.loads(data)["id"]
                with lock:
                    tokens.append(token)
        except Exception as exc:  # reported by the caller
            with lock:
                errors.append(repr(exc))
        finally:
            client.close()

    pool = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors and not tokens:
        raise SystemExit(f"loadgen: tokenization failed: {errors[:3]}")
    if errors:
        print(f"loadgen: {len(errors)} tokenization errors, e.g. {errors[0]}", file=sys.stderr)
    return tokens


def drive(
    *,
    base_url: str,
    api_key: str,
    clients: int,
    seconds: float,
    supply: TokenSupply,
    amount: int,
    currency: str,
    idempotency: bool,
    tag: str,
) -> tuple[list[list], float, int]:
    """The closed loop: every client sends its next payment as soon as the last one answered.
    Returns (samples, elapsed seconds, connection resends)."""
    per_client: list[list[list]] = [[] for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)
    clock = {"start": 0.0, "stop": 0.0}
    resends = [0] * clients

    def work(index: int) -> None:
        client = Client(base_url, api_key)
        samples = per_client[index]
        seq = 0
        barrier.wait()
        start, stop = clock["start"], clock["stop"]
        try:
            while time.perf_counter() < stop:
                seq += 1
                payload = {
                    "amount": amount,
                    "currency": currency,
                    "capture_method": "automatic",
                    "payment_method": supply.take(),
                    "confirm": True,
                    "order_id": f"{tag}-{index}-{seq}",
                }
                key = uuid.uuid4().hex if idempotency else None
                began = time.perf_counter()
                try:
                    status, data = client.post("/v1/payment_intents", payload, key)
                except Exception as exc:  # counted, the loop goes on
                    samples.append(
                        [
                            round(began - start, 4),
                            round((time.perf_counter() - began) * 1000, 3),
                            0,
                            type(exc).__name__,
                            None,
                        ]
                    )
                    time.sleep(0.05)
                    continue
                latency_ms = (time.perf_counter() - began) * 1000
                intent_status, intent_id = None, None
                try:
                    parsed = json.loads(data)
                    if status == 200:
                        intent_status, intent_id = parsed.get("status"), parsed.get("id")
                    else:
                        error = parsed.get("error", {})
                        intent_status = error.get("code")
                        intent_id = (error.get("payment_intent") or {}).get("id")
                except ValueError:
                    intent_status = "non_json"
                samples.append(
                    [
                        round(began - start, 4),
                        round(latency_ms, 3),
                        status,
                        intent_status,
                        intent_id,
                    ]
                )
        finally:
            resends[index] = client.resends
            client.close()

    pool = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(clients)]
    for thread in pool:
        thread.start()
    clock["start"] = time.perf_counter()
    clock["stop"] = clock["start"] + seconds
    barrier.wait()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - clock["start"]
    return [s for samples in per_client for s in samples], elapsed, sum(resends)


def drive_open(
    *,
    base_url: str,
    api_key: str,
    rate: float,
    clients: int,
    seconds: float,
    supply: TokenSupply,
    amount: int,
    currency: str,
    idempotency: bool,
    tag: str,
    seed: int = 1,
) -> tuple[list[list], float, int]:
    """The open loop: arrivals at `rate` per second for `seconds`, sent by up to `clients`
    threads. A sample's latency runs from its scheduled arrival to its answer. Returns
    (samples, seconds until the last answer, connection resends); samples as drive's, plus the
    time it waited for a free thread (ms) as a sixth column."""
    import queue
    import random

    arrivals: queue.Queue = queue.Queue()
    samples: list[list] = []
    lock = threading.Lock()
    resends = [0] * clients
    start = time.perf_counter()

    def work(index: int) -> None:
        client = Client(base_url, api_key)
        try:
            while True:
                item = arrivals.get()
                if item is None:
                    return
                seq, scheduled = item
                sent = time.perf_counter()
                payload = {
                    "amount": amount,
                    "currency": currency,
                    "capture_method": "automatic",
                    "payment_method": supply.take(),
                    "confirm": True,
                    "order_id": f"{tag}-{seq}",
                }
                key = uuid.uuid4().hex if idempotency else None
                intent_status, intent_id, status = None, None, 0
                try:
                    status, data = client.post("/v1/payment_intents", payload, key)
                    parsed = json.loads(data)
                    if status == 200:
                        intent_status, intent_id = parsed.get("status"), parsed.get("id")
                    else:
                        error = parsed.get("error", {})
                        intent_status = error.get("code")
                        intent_id = (error.get("payment_intent") or {}).get("id")
                except ValueError:
                    intent_status = "non_json"
                except Exception as exc:  # counted, the loop goes on
                    intent_status = type(exc).__name__
                done = time.perf_counter()
                with lock:
                    samples.append(
                        [
                            round(scheduled - start, 4),
                            round((done - scheduled) * 1000, 3),
                            status,
                            intent_status,
                            intent_id,
                            round((sent - scheduled) * 1000, 3),
                        ]
                    )
        finally:
            resends[index] = client.resends
            client.close()

    pool = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(clients)]
    for thread in pool:
        thread.start()
    draw = random.Random(seed)
    start = time.perf_counter()
    at, seq = start, 0
    while True:
        at += draw.expovariate(rate)
        if at - start >= seconds:
            break
        delay = at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        seq += 1
        arrivals.put((seq, at))
    for _ in pool:
        arrivals.put(None)
    for thread in pool:
        thread.join()
    # until the last answer: a server slower than the arrivals drains its backlog after the
    # arrival window, and its throughput is what it served over the whole time
    return samples, time.perf_counter() - start, sum(resends)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--scenario", required=True)
    parser.add_argument(
        "--clients", type=int, required=True, help="closed loop: clients; open: max in flight"
    )
    parser.add_argument(
        "--rate", type=float, default=0.0, help="open loop: arrivals per second (0: closed loop)"
    )
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--amount", type=int, default=2000)
    parser.add_argument("--currency", default="eur")
    parser.add_argument("--no-idempotency-key", action="store_true")
    parser.add_argument("--tokenize-threads", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=40000)
    parser.add_argument(
        "--cpu-group",
        action="append",
        default=[],
        help="name=pid[,pid…]: a process tree whose CPU time is reported",
    )
    parser.add_argument("--cpu-db", default=None, help="database whose backends' CPU is reported")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    groups: dict[str, list[int]] = {}
    for spec in args.cpu_group:
        name, _, pids = spec.partition("=")
        groups[name] = [int(p) for p in pids.split(",") if p]
    tag = f"bench-{args.scenario}-{uuid.uuid4().hex[:6]}"
    idempotency = not args.no_idempotency_key
    supply = TokenSupply()

    # warm-up: enough cards for a fast stack; reuse beyond that does not matter here
    t0 = time.perf_counter()
    supply.add(
        tokenize(
            args.base_url,
            args.api_key,
            min(args.max_tokens, max(200, args.clients * 3)),
            args.tokenize_threads,
        )
    )
    tokenize_s = time.perf_counter() - t0
    driver = drive
    if args.rate > 0:
        driver = functools.partial(drive_open, rate=args.rate)
    warm, warm_elapsed, _ = driver(
        base_url=args.base_url,
        api_key=args.api_key,
        clients=args.clients,
        seconds=args.warmup,
        supply=supply,
        amount=args.amount,
        currency=args.currency,
        idempotency=idempotency,
        tag=tag + "-warm",
    )
    warm_ok = sum(1 for s in warm if s[2] == 200)
    warm_rate = warm_ok / warm_elapsed if warm_elapsed else 0.0

    # fresh cards for the timed run only
    supply = TokenSupply()
    wanted = min(
        args.max_tokens, math.ceil(max(warm_rate, 50) * args.duration * 1.3) + args.clients
    )
    t0 = time.perf_counter()
    supply.add(tokenize(args.base_url, args.api_key, wanted, args.tokenize_threads))
    tokenize_s += time.perf_counter() - t0

    loadgen_before = os.times()
    cpu_before = procstat.snapshot(groups, args.cpu_db)
    samples, elapsed, resends = driver(
        base_url=args.base_url,
        api_key=args.api_key,
        clients=args.clients,
        seconds=args.duration,
        supply=supply,
        amount=args.amount,
        currency=args.currency,
        idempotency=idempotency,
        tag=tag,
    )
    cpu_after = procstat.snapshot(groups, args.cpu_db)
    loadgen_after = os.times()
    cpu = procstat.delta(cpu_before, cpu_after)
    cpu["loadgen"] = (loadgen_after.user + loadgen_after.system) - (
        loadgen_before.user + loadgen_before.system
    )

    report = {
        "scenario": args.scenario,
        "clients": args.clients,
        "open_loop_rate_per_s": args.rate or None,
        "warmup_s": args.warmup,
        "warmup_rate_per_s": round(warm_rate, 1),
        "duration_s": args.duration,
        "elapsed_s": round(elapsed, 3),
        "idempotency_key": idempotency,
        "tokens_fresh": wanted,
        "pm_reused": supply.reused,
        "tokenize_s": round(tokenize_s, 1),
        "connection_resends": resends,
        "cpu_seconds": {k: round(v, 3) for k, v in cpu.items()},
        "samples": samples,
    }
    Path(args.out).write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
