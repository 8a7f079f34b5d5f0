"""Faults on a schedule, one at a time, round after round while the load runs: every process
fault (kill -9 of the worker and of a web worker, Redis stopped, PostgreSQL restarted, its
backends terminated), every simulator fault (docs/psp-simulator.md: 503, 500, processed-then-500,
timeouts, lost responses, outages in both modes, a refused capture; webhook duplication, delay
and reordering) and a merchant endpoint that fails for a while. Each PSP fault alternates
between the two connectors from one round to the next."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import requests

from soak.setup import SIM_NAMES


@dataclass
class Injection:
    at: float  # seconds since the soak started
    fault: str
    target: str
    detail: str
    ok: bool
    seconds: float  # how long it lasted (or, for a kill, until the process was back)


@dataclass(frozen=True)
class FaultClass:
    name: str
    description: str
    run: Callable[[FaultRunner, str], str]  # (runner, target connector) -> detail
    nominal_seconds: Callable[[FaultRunner], float]


def _psp(faults: dict, *, both: bool = False) -> Callable[[FaultRunner, str], str]:
    def run(runner: FaultRunner, dialect: str) -> str:
        if both:
            return runner.psp_fault("", faults)
        detail = runner.psp_fault(dialect, faults)
        if runner.psp_injected[runner._current] or runner.stop.is_set():
            return detail
        # routing sent nothing to that PSP meanwhile (its breaker opened, or it was disabled
        # by its error rate): the fault goes to the other one, so that every class is run
        other = "adyen" if dialect == "stripe" else "stripe"
        return f"{detail}; then {runner.psp_fault(other, faults)}"

    return run


def _webhook(switches: dict, reset: dict) -> Callable[[FaultRunner, str], str]:
    def run(runner: FaultRunner, dialect: str) -> str:
        return runner.webhook_fault(switches, reset)

    return run


def _psp_seconds(runner: FaultRunner) -> float:
    return runner.config.psp_fault_seconds


def _instant(runner: FaultRunner) -> float:
    return 1.0


CLASSES: list[FaultClass] = [
    FaultClass(
        "psp_503", "PSP answers 503 (not processed)", _psp({"error_503_rate": 0.5}), _psp_seconds
    ),
    FaultClass(
        "kill_web_worker",
        "kill -9 of a gunicorn worker",
        lambda r, d: r.kill_web_worker(),
        _instant,
    ),
    FaultClass(
        "psp_500", "PSP answers 500 (not processed)", _psp({"error_500_rate": 0.5}), _psp_seconds
    ),
    FaultClass(
        "webhook_duplicate",
        "PSP sends each webhook twice (50 %)",
        _webhook({"duplicate_rate": 0.5}, {"duplicate_rate": 0}),
        _psp_seconds,
    ),
    FaultClass(
        "psp_timeout",
        "PSP hangs 3 s, then 504 (not processed; our read timeout is 2 s)",
        _psp({"timeout_rate": 0.5, "timeout_delay_s": 3}),
        _psp_seconds,
    ),
    FaultClass(
        "kill_worker",
        "kill -9 of the Celery worker (its whole process tree)",
        lambda r, d: r.kill_worker(),
        _instant,
    ),
    FaultClass(
        "psp_processed_then_500",
        "PSP processes, then answers 500",
        _psp({"processed_then_500_rate": 0.5}),
        _psp_seconds,
    ),
    FaultClass(
        "webhook_delay",
        "PSP webhooks held back 2±1.5 s",
        _webhook(
            {"delay_ms": 2000, "delay_jitter_ms": 1500}, {"delay_ms": 0, "delay_jitter_ms": 0}
        ),
        _psp_seconds,
    ),
    FaultClass(
        "psp_response_lost",
        "PSP processes, the answer is lost (held 4 s)",
        _psp({"response_lost_rate": 0.5, "response_lost_delay_s": 4}),
        _psp_seconds,
    ),
    FaultClass(
        "pg_terminate_backends",
        "pg_terminate_backend on every platform connection",
        lambda r, d: r.terminate_backends(),
        _instant,
    ),
    FaultClass(
        "psp_outage",
        "PSP outage: every call 503",
        _psp({"outage": True, "outage_mode": "503"}),
        _psp_seconds,
    ),
    FaultClass(
        "webhook_reorder",
        "PSP webhooks delivered shuffled (windows of 4)",
        _webhook({"reorder_window": 4, "reorder_max_hold_ms": 2000}, {"reorder_window": 0}),
        _psp_seconds,
    ),
    FaultClass(
        "redis_outage",
        "Redis stopped, then started again",
        lambda r, d: r.redis_outage(),
        lambda r: r.config.redis_outage_seconds + 2,
    ),
    FaultClass(
        "psp_outage_drop",
        "PSP outage: connections dropped after the request was sent",
        _psp({"outage": True, "outage_mode": "drop"}),
        _psp_seconds,
    ),
    FaultClass(
        "psp_capture_503",
        "both PSPs answer 503 to every capture",
        _psp({"error_503_rate": 1.0, "operations": ["capture"]}, both=True),
        _psp_seconds,
    ),
    FaultClass(
        "pg_restart",
        "PostgreSQL restarted (pg_ctl restart -m fast)",
        lambda r, d: r.pg_restart(),
        lambda r: 4.0,
    ),
    FaultClass(
        "merchant_endpoint_down",
        "the merchant's webhook endpoint answers 500",
        lambda r, d: r.merchant_down(),
        _psp_seconds,
    ),
]
CLASS_NAMES = [c.name for c in CLASSES]
# injected by the load itself (the simulator's "authorises; the capture fails" card)
LOAD_FAULT = "capture_refused_card"


class FaultRunner:
    def __init__(
        self, stack, endpoint, config, t0: float, classes: list[FaultClass], setup
    ) -> None:
        self.stack, self.endpoint, self.config, self.t0 = stack, endpoint, config, t0
        self.setup = setup
        self.classes = classes
        self.injections: list[Injection] = []
        self.psp_injected: Counter = Counter()  # fault -> requests the simulator faulted
        self.rounds_done = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="faults", daemon=True)
        self._current = ""
        self.rng = random.Random(config.seed)

    def round_seconds(self) -> float:
        interval = self.config.fault_interval
        return sum(max(interval, c.nominal_seconds(self) + 0.5) for c in self.classes)

    def start(self) -> None:
        self.thread.start()

    def _loop(self) -> None:
        round_index = 0
        psp_faults = 0
        while not self.stop.is_set():
            for fault in self.classes:
                if self.stop.is_set():
                    return
                dialect = ""
                if fault.name.startswith("psp_"):
                    # PSP faults alternate between the connectors (the other one on odd rounds)
                    preferred = ("stripe", "adyen")[(psp_faults + round_index) % 2]
                    psp_faults += 1
                    dialect = self._routable_connector(preferred)
                self._current = fault.name
                began = time.monotonic()
                try:
                    detail = fault.run(self, dialect)
                    ok = True
                except Exception as exc:  # reported, never fatal to the soak
                    detail, ok = f"{type(exc).__name__}: {exc}", False
                lasted = time.monotonic() - began
                target = dialect if fault.name.startswith("psp_") else "-"
                if fault.name == "psp_capture_503":
                    target = "both"
                self.injections.append(
                    Injection(began - self.t0, fault.name, target, detail, ok, round(lasted, 1))
                )
                rest = self.config.fault_interval - lasted
                if rest > 0 and self.stop.wait(rest):
                    return
            round_index += 1
            self.rounds_done = round_index

    def join(self) -> None:
        self.stop.set()
        self.thread.join(timeout=self.config.redis_outage_seconds + 120)

    def _routable_connector(self, preferred: str) -> str:
        """`preferred`, or the other connector when routing sends `preferred` nothing (its
        circuit breaker open, or disabled by its error rate: no request would reach that PSP
        to be faulted). Waits a little for both to be routable first, so that one PSP's
        incident does not overlap the other's too often (with both out every payment is
        refused), then up to 40 s for one to be."""
        other = "adyen" if preferred == "stripe" else "stripe"
        calm = time.monotonic() + 2 * self.config.fault_interval
        while not self.stop.is_set() and time.monotonic() < calm:
            if all(self._routable(d) for d in (preferred, other)):
                return preferred
            self.stop.wait(1.0)
        deadline = time.monotonic() + 40
        while not self.stop.is_set():
            for dialect in (preferred, other):
                if self._routable(dialect):
                    return dialect
            if time.monotonic() > deadline:
                break
            self.stop.wait(1.0)
        return preferred

    def _routable(self, dialect: str) -> bool:
        """Whether routing would send that connector payments now: enabled (not disabled by
        its error rate) and its breaker not open. True when the API cannot tell."""
        try:
            response = requests.get(
                f"{self.stack.api_url}/v1/connectors/{self.setup.connectors[dialect]}",
                headers={"Authorization": f"Bearer {self.setup.secret_key}"},
                timeout=5,
            )
            connector = response.json()
            breaker = (connector.get("health") or {}).get("breaker")
            return connector.get("enabled") is not False and breaker != "open"
        except (requests.RequestException, ValueError, AttributeError):
            return True

    # ------------------------------------------------------------------ the faults
    def _sim(self, method: str, path: str, body: dict | None = None) -> dict:
        response = requests.request(method, f"{self.stack.sim_url}{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def psp_fault(self, dialect: str, faults: dict) -> str:
        """On for `psp_fault_seconds`, longer (up to three times) until a request was hit."""
        names = [SIM_NAMES[dialect]] if dialect else list(SIM_NAMES.values())
        for name in names:
            self._sim("PUT", f"/_sim/connectors/{name}/faults", faults)
        began = time.monotonic()
        self.stop.wait(self.config.psp_fault_seconds)
        injected = 0
        while True:
            injected = sum(
                self._sim("GET", f"/_sim/connectors/{name}/faults")["injected"] for name in names
            )
            waited = time.monotonic() - began
            if injected or waited >= 3 * self.config.psp_fault_seconds or self.stop.is_set():
                break
            self.stop.wait(0.5)
        for name in names:
            self._sim("DELETE", f"/_sim/connectors/{name}/faults")
        self.psp_injected[self._current] += injected
        return f"{', '.join(names)}: {injected} requests faulted in {waited:.0f} s"

    def webhook_fault(self, switches: dict, reset: dict) -> str:
        for name in SIM_NAMES.values():
            self._sim("PATCH", f"/_sim/connectors/{name}/webhook", switches)
        self.stop.wait(self.config.psp_fault_seconds)
        for name in SIM_NAMES.values():
            self._sim("PATCH", f"/_sim/connectors/{name}/webhook", reset)
        return f"both connectors for {self.config.psp_fault_seconds:g} s"

    def kill_worker(self) -> str:
        worker = self.stack.worker
        ready_before = self.stack.worker_log_ready_count()
        began = time.monotonic()
        pid = worker.kill_tree()
        if pid is None:
            raise RuntimeError("no worker process to kill")
        back = self.stack.wait_worker_ready(since=ready_before, seconds=90)
        took = time.monotonic() - began
        if not back:
            raise RuntimeError(f"the worker (pid {pid}) was not ready again within 90 s")
        return f"pid {pid} killed; a new worker was ready after {took:.1f} s"

    def kill_web_worker(self) -> str:
        workers = self.stack.web_workers()
        if not workers:
            raise RuntimeError("no gunicorn worker to kill")
        victim = self.rng.choice(workers)
        began = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        deadline = began + 60
        while time.monotonic() < deadline:
            now = self.stack.web_workers()
            if victim not in now and len(now) >= self.config.web_workers:
                return (
                    f"pid {victim} killed; gunicorn had {len(now)} workers again after "
                    f"{time.monotonic() - began:.1f} s"
                )
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not replace worker {victim} within 60 s")

    def redis_outage(self) -> str:
        self.stack.redis.stop()
        self.stop.wait(self.config.redis_outage_seconds)
        self.stack.redis.start()
        return f"down {self.config.redis_outage_seconds:g} s"

    def pg_restart(self) -> str:
        began = time.monotonic()
        self.stack.postgres.restart()
        return f"back after {time.monotonic() - began:.1f} s"

    def terminate_backends(self) -> str:
        return f"{self.stack.postgres.terminate_backends('soak')} backends terminated"

    def merchant_down(self) -> str:
        self.endpoint.fail_for(self.config.psp_fault_seconds)
        self.stop.wait(self.config.psp_fault_seconds)
        return f"{self.config.psp_fault_seconds:g} s"

    # ------------------------------------------------------------------ after the load
    def clear_all(self) -> None:
        """Every fault off, Redis and PostgreSQL up: the platform may settle."""
        self.endpoint.failing_until = 0.0
        if self.stack.redis.process is None:
            self.stack.redis.start()
        for name in SIM_NAMES.values():
            self._sim("DELETE", f"/_sim/connectors/{name}/faults")
            self._sim(
                "PATCH",
                f"/_sim/connectors/{name}/webhook",
                {"duplicate_rate": 0, "delay_ms": 0, "delay_jitter_ms": 0, "reorder_window": 0},
            )
        self._sim("POST", "/_sim/webhooks/flush")
