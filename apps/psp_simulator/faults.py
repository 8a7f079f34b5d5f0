"""Fault injection per connector: latency, errors, timeouts, outages and lost responses.

Which faults mean "processed" matters to the caller, so each mode says it plainly:

| mode                 | wire                              | charge processed? |
|----------------------|-----------------------------------|-------------------|
| error_503            | 503 at once                       | no                |
| error_500            | 500 at once                       | no                |
| timeout              | hangs `timeout_delay_s`, then 504 | no                |
| outage               | 503, or the connection is dropped | no                |
| processed_then_500   | 500 after the charge was stored   | yes               |
| response_lost        | answer after `response_lost_delay_s` | yes            |
| rejected             | `rejected_status` (401, 404, …) at once | no            |

A 500 looks the same on the wire whether or not the charge was processed: that ambiguity is the
point (a caller must treat any 500 as "unknown" and inquire).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

OPERATIONS = ("authorize", "capture", "cancel", "refund", "retrieve", "payout", "dispute")
LATENCY_DISTRIBUTIONS = ("fixed", "normal", "lognormal", "pareto")
OUTAGE_MODES = ("503", "drop")

# the modes drawn from one random number per request, in this order
RATE_MODES = (
    "error_503",
    "error_500",
    "timeout",
    "processed_then_500",
    "response_lost",
    "rejected",  # appended last, so a seed draws the same modes as before for the others
)
NOT_PROCESSED_MODES = frozenset({"error_503", "error_500", "timeout", "rejected"})
# what a `rejected` answer may be: refused before processing, as a PSP (or its edge) refuses a
# request it cannot authenticate, route, validate or take now
REJECTED_STATUSES = (400, 401, 403, 404, 422, 429)


# accepted spellings -> field names (the management command's flags, shorter forms)
FIELD_ALIASES = {
    "timeout_s": "timeout_delay_s",
    "response_lost_s": "response_lost_delay_s",
    "error_rate": "error_500_rate",
    "unavailable_rate": "error_503_rate",
}


class InvalidFaults(ValueError):
    pass


@dataclass
class FaultConfig:
    # latency added to every matching request
    latency_ms: float = 0.0  # fixed: the base; normal: the mean; lognormal: the median;
    # pareto: the minimum (scale)
    latency_jitter_ms: float = 0.0  # fixed only: uniform +/- jitter
    latency_distribution: str = "fixed"
    latency_stddev_ms: float = 0.0  # normal
    latency_sigma: float = 1.0  # lognormal shape
    latency_pareto_alpha: float = 1.5  # pareto shape: smaller = longer tail
    latency_max_ms: float = 60_000.0  # cap so one draw cannot hang a test forever
    # error rates, each 0..1; their sum must not exceed 1
    error_503_rate: float = 0.0
    error_500_rate: float = 0.0
    processed_then_500_rate: float = 0.0
    # Stripe keeps and replays a 500 it produced after processing; a 500 from a proxy in front
    # of the PSP is not kept. False (default): replays return the real stored result.
    processed_then_500_replays_error: bool = False
    timeout_rate: float = 0.0
    timeout_delay_s: float = 30.0
    response_lost_rate: float = 0.0
    response_lost_delay_s: float = 15.0
    rejected_rate: float = 0.0
    rejected_status: int = 404
    # outage: while `outage` is on, or while now is within [outage_from, outage_until)
    outage: bool = False
    outage_from: float | None = None  # unix seconds
    outage_until: float | None = None
    outage_mode: str = "503"
    # scope and reproducibility
    operations: list[str] | None = None  # None: every operation
    limit: int | None = None  # inject at most this many faults (not latency), then stop
    seed: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: FaultConfig | None = None) -> FaultConfig:
        if not isinstance(data, dict):
            raise InvalidFaults("faults must be a JSON object")
        data = {FIELD_ALIASES.get(key, key): value for key, value in data.items()}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidFaults(f"unknown fault fields: {', '.join(unknown)}")
        merged = asdict(base) if base is not None else {}
        merged.update(data)
        config = cls(**merged)
        config.validate()
        return config

    def validate(self) -> None:
        for name in (*(f"{mode}_rate" for mode in RATE_MODES),):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise InvalidFaults(f"{name} must be a number between 0 and 1")
        if sum(getattr(self, f"{mode}_rate") for mode in RATE_MODES) > 1.0 + 1e-9:
            raise InvalidFaults("the error rates add up to more than 1")
        for name in (
            "latency_ms",
            "latency_jitter_ms",
            "latency_stddev_ms",
            "latency_max_ms",
            "timeout_delay_s",
            "response_lost_delay_s",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise InvalidFaults(f"{name} must be a number >= 0")
        if self.latency_distribution not in LATENCY_DISTRIBUTIONS:
            raise InvalidFaults(f"latency_distribution must be one of {LATENCY_DISTRIBUTIONS}")
        if self.latency_sigma <= 0 or self.latency_pareto_alpha <= 0:
            raise InvalidFaults("latency_sigma and latency_pareto_alpha must be > 0")
        if self.rejected_status not in REJECTED_STATUSES:
            raise InvalidFaults(f"rejected_status must be one of {REJECTED_STATUSES}")
        if self.outage_mode not in OUTAGE_MODES:
            raise InvalidFaults(f"outage_mode must be one of {OUTAGE_MODES}")
        if self.operations is not None and (
            not isinstance(self.operations, list) or not set(self.operations) <= set(OPERATIONS)
        ):
            raise InvalidFaults(f"operations must be a list drawn from {OPERATIONS}")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 0):
            raise InvalidFaults("limit must be a whole number >= 0")
        if self.seed is not None and not isinstance(self.seed, int):
            raise InvalidFaults("seed must be an integer")
        for name in ("outage_from", "outage_until"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (int, float)):
                raise InvalidFaults(f"{name} must be unix seconds")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def outage_active(self, now: float) -> bool:
        if self.outage:
            return True
        if self.outage_from is None and self.outage_until is None:
            return False
        starts = self.outage_from if self.outage_from is not None else -math.inf
        ends = self.outage_until if self.outage_until is not None else math.inf
        return starts <= now < ends


@dataclass(frozen=True)
class FaultDecision:
    latency_s: float = 0.0
    mode: str | None = None  # "outage" | one of RATE_MODES | None
    sleep_s: float = 0.0  # timeout / response_lost hang

    @property
    def processed(self) -> bool:
        return self.mode not in NOT_PROCESSED_MODES and self.mode != "outage"


class FaultInjector:
    """One connector's fault configuration plus its RNG. Callers hold the store lock."""

    def __init__(self) -> None:
        self.config = FaultConfig()
        self.rng = random.Random()
        self.injected = 0  # faults injected since the config was last set

    def configure(self, config: FaultConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.injected = 0

    def decide(self, operation: str, now: float | None = None) -> FaultDecision:
        config = self.config
        if config.operations is not None and operation not in config.operations:
            return FaultDecision()
        now = time.time() if now is None else now
        budget_left = config.limit is None or self.injected < config.limit
        if budget_left and config.outage_active(now):
            self.injected += 1
            return FaultDecision(mode="outage")
        latency_s = self._latency_s()
        mode = self._draw_mode() if budget_left else None
        if mode is None:
            return FaultDecision(latency_s=latency_s)
        self.injected += 1
        sleep_s = {
            "timeout": config.timeout_delay_s,
            "response_lost": config.response_lost_delay_s,
        }.get(mode, 0.0)
        return FaultDecision(latency_s=latency_s, mode=mode, sleep_s=sleep_s)

    def _draw_mode(self) -> str | None:
        config = self.config
        if not any(getattr(config, f"{mode}_rate") for mode in RATE_MODES):
            return None  # keep the RNG sequence untouched when no mode is configured
        roll = self.rng.random()
        threshold = 0.0
        for mode in RATE_MODES:
            threshold += getattr(config, f"{mode}_rate")
            if roll < threshold:
                return mode
        return None

    def _latency_s(self) -> float:
        config = self.config
        base = config.latency_ms
        distribution = config.latency_distribution
        if distribution == "fixed":
            if not base and not config.latency_jitter_ms:
                return 0.0
            jitter = config.latency_jitter_ms
            ms = base + (self.rng.uniform(-jitter, jitter) if jitter else 0.0)
        elif distribution == "normal":
            ms = self.rng.gauss(base, config.latency_stddev_ms)
        elif distribution == "lognormal":
            ms = base * self.rng.lognormvariate(0.0, config.latency_sigma)
        else:  # pareto: heavy tail above the minimum `base`
            ms = base * self.rng.paretovariate(config.latency_pareto_alpha)
        return max(0.0, min(ms, config.latency_max_ms)) / 1000.0
