"""What a soak run does, from the environment (`make soak SOAK_PAYMENTS=10000`) or the command
line (`python -m soak --payments 10000`); see docs/soak.md."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return type(default)(value) if default is not None else value


@dataclass
class SoakConfig:
    payments: int = 300  # payments started (the load stops after this many)
    rate: float = 4.0  # payments started per second (paced, not a benchmark)
    clients: int = 8  # concurrent merchant clients
    max_duration: float = 0.0  # seconds; 0 = no cap beyond the payment count
    min_fault_cycles: int = 1  # the load lasts at least this many full rounds of faults
    fault_interval: float = 5.0  # seconds between the start of two faults
    psp_fault_seconds: float = 4.0  # how long a PSP or webhook fault stays on
    redis_outage_seconds: float = 20.0
    settle_seconds: float = 180.0  # bounded wait for the platform to settle
    stall_seconds: float = 45.0  # …cut short when nothing moved for this long
    retry_budget_seconds: float = 30.0  # how long a client keeps retrying one request
    faults: list[str] = field(default_factory=list)  # empty: every class
    seed: int | None = None
    api_port: int = 8600
    sim_port: int = 8690
    pg_port: int = 5440
    redis_port: int = 6393
    web_workers: int = 3
    web_threads: int = 8
    worker_concurrency: int = 2
    workdir: Path = ROOT / ".local" / "soak"
    keep: bool = False  # leave PostgreSQL's data and the logs for inspection (always kept: logs)
    report_path: Path | None = None

    @classmethod
    def from_env_and_args(cls, argv: list[str] | None = None) -> SoakConfig:
        d = cls()
        parser = argparse.ArgumentParser(
            prog="python -m soak",
            description="Fault soak: the production-shaped stack under a mixed payment load "
            "with faults injected on a schedule, then the money audit. Exit 0: every invariant "
            "held; 1: some broke; 2: the soak itself could not run.",
        )
        add = parser.add_argument
        add("--payments", type=int, default=_env("SOAK_PAYMENTS", d.payments))
        add("--rate", type=float, default=_env("SOAK_RATE", d.rate))
        add("--clients", type=int, default=_env("SOAK_CLIENTS", d.clients))
        add("--max-duration", type=float, default=_env("SOAK_MAX_DURATION", d.max_duration))
        add("--min-fault-cycles", type=int, default=_env("SOAK_FAULT_CYCLES", d.min_fault_cycles))
        add("--fault-interval", type=float, default=_env("SOAK_FAULT_INTERVAL", d.fault_interval))
        add(
            "--psp-fault-seconds",
            type=float,
            default=_env("SOAK_PSP_FAULT_SECONDS", d.psp_fault_seconds),
        )
        add(
            "--redis-outage-seconds",
            type=float,
            default=_env("SOAK_REDIS_OUTAGE_SECONDS", d.redis_outage_seconds),
        )
        add("--settle-seconds", type=float, default=_env("SOAK_SETTLE_SECONDS", d.settle_seconds))
        add("--stall-seconds", type=float, default=_env("SOAK_STALL_SECONDS", d.stall_seconds))
        add("--retry-budget", type=float, default=_env("SOAK_RETRY_BUDGET", d.retry_budget_seconds))
        add(
            "--faults",
            default=_env("SOAK_FAULTS", ""),
            help="comma-separated fault classes (default: all; see docs/soak.md)",
        )
        add("--seed", type=int, default=_env("SOAK_SEED", None))
        add("--api-port", type=int, default=_env("SOAK_API_PORT", d.api_port))
        add("--sim-port", type=int, default=_env("SOAK_SIM_PORT", d.sim_port))
        add("--pg-port", type=int, default=_env("SOAK_PG_PORT", d.pg_port))
        add("--redis-port", type=int, default=_env("SOAK_REDIS_PORT", d.redis_port))
        add("--web-workers", type=int, default=_env("SOAK_WEB_WORKERS", d.web_workers))
        add("--workdir", type=Path, default=Path(_env("SOAK_DIR", str(d.workdir))))
        add("--keep", action="store_true", default=bool(_env("SOAK_KEEP", "")))
        add("--report", type=Path, default=None, help="write the report as JSON here")
        args = parser.parse_args(argv)
        return cls(
            payments=args.payments,
            rate=args.rate,
            clients=args.clients,
            max_duration=args.max_duration,
            min_fault_cycles=args.min_fault_cycles,
            fault_interval=args.fault_interval,
            psp_fault_seconds=args.psp_fault_seconds,
            redis_outage_seconds=args.redis_outage_seconds,
            settle_seconds=args.settle_seconds,
            stall_seconds=args.stall_seconds,
            retry_budget_seconds=args.retry_budget,
            faults=[f.strip() for f in args.faults.split(",") if f.strip()],
            seed=args.seed,
            api_port=args.api_port,
            sim_port=args.sim_port,
            pg_port=args.pg_port,
            redis_port=args.redis_port,
            web_workers=args.web_workers,
            workdir=args.workdir.resolve(),
            keep=args.keep,
            report_path=args.report,
        )
