"""Connector health in Redis: rolling outcomes per connector and segment, latency, breakers.

Keys (all with a TTL; Redis is never the only copy of anything that matters; the `routing:`
prefix is kept from when this lived in the routing app, so running systems keep their data):
- `routing:events:<mca>`: the latest calls, newest first, "unix_ms:kind:latency_ms" with kind
  a (approved), d (declined), e (failure counted by the breaker), o (other answer). Rolling
  success rate, error rate and p95 latency come from the entries inside the time window.
- `routing:auth:<mca>:<segment>:<values>`: the latest authorization outcomes ("1" approved,
  "0" declined or failed) for success-rate routing, per segment (brand, currency, …).
- the breakers' keys (apps.psp_adapters.breaker).

A breaker transition is a change of the connector (apps.connectors.changes): routing's compiled
caches hear of it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import redis
from django.conf import settings

from apps.core import metrics
from apps.core.redis_client import checkout_redis
from apps.psp_adapters import breaker as breakers
from apps.psp_adapters.contract import Outcome, PSPResult

logger = logging.getLogger(__name__)

EVENTS_KEPT = 1000
KEY_TTL_SECONDS = 7 * 24 * 3600
# payment segments the authorization outcomes are kept per (success-rate routing reads them)
SEGMENTS = {
    "connector": (),
    "brand": ("brand",),
    "currency": ("currency",),
    "funding": ("funding",),
    "issuer_country": ("issuer_country",),
    "brand_currency": ("brand", "currency"),
}
HEALTH_WINDOW_MAX = 200  # the most recent outcomes kept per connector and segment


def _setting(name: str, default):
    return getattr(settings, name, default)


def window_seconds() -> int:
    return int(_setting("ROUTING_HEALTH_WINDOW_SECONDS", 300))


def client() -> redis.Redis:
    # short timeouts and one immediate retry: when Redis is down, routing and breakers fall
    # back (breakers closed, routing from the database) instead of stalling the checkout
    return checkout_redis(timeout=0.5, retries=1)


# --------------------------------------------------------------------------- breakers


def breaker_settings() -> dict:
    return {
        "fail_max": int(_setting("ROUTING_BREAKER_FAIL_MAX", 5)),
        "reset_timeout": float(_setting("ROUTING_BREAKER_RESET_TIMEOUT_SECONDS", 30)),
        "half_open_max_calls": int(_setting("ROUTING_BREAKER_HALF_OPEN_MAX_CALLS", 1)),
    }


def breaker_transitioned(connector_id: str, old: str, new: str) -> None:
    """Every automatic breaker transition: in the audit log, and routing caches refreshed
    (called once, by the process that made the transition)."""
    from apps.connectors.changes import connector_changed
    from apps.connectors.models import Connector
    from apps.core.audit import Actor, audit_record

    row = Connector.objects.filter(public_id=connector_id).values(
        "merchant_id", "livemode", "connector_type"
    )
    row = row.first() or {}
    metrics.breaker_transitioned(psp=row.get("connector_type", ""), state=new)
    audit_record(
        actor=Actor.system("circuit_breaker"),
        action=f"connector.breaker_{new}",
        object_type="connector",
        object_id=connector_id,
        merchant_id=row.get("merchant_id"),
        livemode=row.get("livemode"),
        changes={"breaker": [old, new]},
    )
    if row:
        connector_changed(row["merchant_id"], row["livemode"], after_commit=False)


def breaker(connector_id: str) -> breakers.ConnectorBreaker:
    return breakers.breaker_for(
        client=client(),
        connector_id=connector_id,
        on_transition=breaker_transitioned,
        **breaker_settings(),
    )


def breaker_snapshots(connector_ids: list[str], extra_keys: tuple[str, ...] = ()) -> dict:
    conf = breaker_settings()
    return breakers.snapshots(
        client(),
        connector_ids,
        reset_timeout=conf["reset_timeout"],
        half_open_max_calls=conf["half_open_max_calls"],
        extra_keys=extra_keys,
    )


def preread_alone(preread: breakers.Preread) -> None:
    """A caller's pre-call read (`ConnectorBreaker.call`'s `preread`) for a call outside the
    breaker: in a round trip of its own."""
    pipe = client().pipeline(transaction=False)
    take = preread(pipe)
    try:
        replies = pipe.execute(raise_on_error=False)
    except redis.RedisError as exc:
        take(exc)
        return
    take(replies)


# --------------------------------------------------------------------------- recording


def _kind(result: PSPResult) -> str:
    if breakers.counts_as_failure(result):
        return "e"
    if result.outcome in (Outcome.APPROVED, Outcome.REQUIRES_ACTION):
        return "a"
    if result.outcome in (Outcome.SOFT_DECLINE, Outcome.HARD_DECLINE):
        return "d"
    return "o"


def segment_values(segment: str, facts: dict) -> str:
    return "|".join(str(facts.get(name) or "-") for name in SEGMENTS[segment])


def auth_key(connector_id: str, segment: str, facts: dict) -> str:
    return f"routing:auth:{connector_id}:{segment}:{segment_values(segment, facts)}"


def events_key(connector_id: str) -> str:
    return f"routing:events:{connector_id}"


# One round trip per PSP call: the call event, its authorization flag per segment, and, for a
# failure, whether an error-rate check is due (at most one every two seconds per connector)
# with the calls and failures inside the window, counted in Redis.
_RECORD = """
local events, event, kept, ttl = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('LPUSH', events, event)
redis.call('LTRIM', events, 0, kept - 1)
redis.call('EXPIRE', events, ttl)
local flag, window = ARGV[4], tonumber(ARGV[5])
if flag ~= '' then
  for i = 3, #KEYS do
    redis.call('LPUSH', KEYS[i], flag)
    redis.call('LTRIM', KEYS[i], 0, window - 1)
    redis.call('EXPIRE', KEYS[i], ttl)
  end
end
if ARGV[6] == '' or not redis.call('SET', KEYS[2], '1', 'NX', 'EX', 2) then
  return false
end
local cutoff, calls, failures = tonumber(ARGV[6]), 0, 0
for _, item in ipairs(redis.call('LRANGE', events, 0, kept - 1)) do
  local stamp, kind = string.match(item, '^(%d+):(%a)')
  if tonumber(stamp) < cutoff then break end
  calls = calls + 1
  if kind == 'e' then failures = failures + 1 end
end
return {calls, failures}
"""


@dataclass(frozen=True)
class Recorded:
    kind: str  # a (approved) | d (declined) | e (failure) | o (other answer)
    window_calls: int | None = None  # failures only, when an error-rate check is due
    window_failures: int | None = None


def record(connector_id: str, result: PSPResult, facts: dict, latency_ms: int) -> Recorded:
    """Records one PSP call in one round trip. Never raises."""
    recorded: list[Recorded] = []
    try:
        pipe = client().pipeline(transaction=False)
        take_reply = record_on(pipe, connector_id, result, facts, latency_ms, recorded.append)
        take_reply(pipe.execute(raise_on_error=False))
    except redis.RedisError:
        logger.exception("routing: could not record health of %s", connector_id)
    return recorded[0] if recorded else Recorded(_kind(result))


def record_on(
    pipe: redis.client.Pipeline,
    connector_id: str,
    result: PSPResult,
    facts: dict,
    latency_ms: int,
    done: Callable[[Recorded], None],
) -> Callable[[list], None]:
    """`record`, queued on a pipeline that another module executes (the breaker counts the
    call's failure in the same round trip). The returned function takes the pipeline's
    replies (this one's last) and hands the `Recorded` to `done`."""
    kind = _kind(result)
    if result.raw_code in ("circuit_open", "circuit_forced_open"):
        # refused by the breaker: nothing reached the PSP, nothing learnt
        return lambda replies: done(Recorded(kind))
    now_ms = int(time.time() * 1000)
    keys = [events_key(connector_id), f"routing:evaluating:{connector_id}"]
    flag = ""
    if kind in ("a", "d", "e"):
        flag = "1" if kind == "a" else "0"
        keys += [auth_key(connector_id, segment, facts) for segment in SEGMENTS]
    cutoff = str(now_ms - window_seconds() * 1000) if kind == "e" else ""
    args = [
        f"{now_ms}:{kind}:{max(0, int(latency_ms))}",
        EVENTS_KEPT,
        KEY_TTL_SECONDS,
        flag,
        HEALTH_WINDOW_MAX,
        cutoff,
    ]
    script = _record_script()
    # EVALSHA directly: a Script object on a pipeline costs a SCRIPT EXISTS round trip first
    pipe.evalsha(script.sha, len(keys), *keys, *args)

    def take_reply(replies: list) -> None:
        counted = replies[-1]
        if isinstance(counted, redis.exceptions.NoScriptError):
            counted = script(keys=keys, args=args)  # Redis restarted: loads it, once
        elif isinstance(counted, Exception):
            logger.error("routing: could not record health of %s: %s", connector_id, counted)
            done(Recorded(kind))
            return
        _stats_cache_clear_for(connector_id)
        if counted:
            done(Recorded(kind, int(counted[0]), int(counted[1])))
        else:
            done(Recorded(kind))

    return take_reply


@lru_cache(maxsize=4)
def _record_script_for(url: str):
    return client().register_script(_RECORD)


def _record_script():
    return _record_script_for(settings.REDIS_URL)


def forget(connector_id: str) -> None:
    """Drops a connector's rolling call history (on re-enable: old errors must not count)."""
    client().delete(events_key(connector_id))


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class HealthSnapshot:
    calls: int
    approved: int
    declined: int
    failures: int
    success_rate: float | None  # approved / (approved + declined + failures)
    error_rate: float | None  # failures / calls
    p95_latency_ms: int | None
    window_seconds: int

    def as_dict(self) -> dict:
        return {
            "calls": self.calls,
            "success_rate": None if self.success_rate is None else round(self.success_rate, 4),
            "error_rate": None if self.error_rate is None else round(self.error_rate, 4),
            "p95_latency_ms": self.p95_latency_ms,
            "window_seconds": self.window_seconds,
        }


def _percentile(values: list[int], pct: float) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(pct / 100 * len(ordered)))]


def _snapshot_from(raw: list[bytes], window: int, now_ms: int) -> HealthSnapshot:
    cutoff = now_ms - window * 1000
    counts = {"a": 0, "d": 0, "e": 0, "o": 0}
    latencies = []
    for item in raw:
        stamp, kind, latency = item.decode().split(":")
        if int(stamp) < cutoff:
            break  # newest first: everything after is older
        counts[kind] += 1
        if kind != "e":
            latencies.append(int(latency))
    calls = sum(counts.values())
    decided = counts["a"] + counts["d"] + counts["e"]
    return HealthSnapshot(
        calls=calls,
        approved=counts["a"],
        declined=counts["d"],
        failures=counts["e"],
        success_rate=counts["a"] / decided if decided else None,
        error_rate=counts["e"] / calls if calls else None,
        p95_latency_ms=_percentile(latencies, 95),
        window_seconds=window,
    )


def snapshots(connector_ids: list[str], window: int | None = None) -> dict[str, HealthSnapshot]:
    window = window or window_seconds()
    pipe = client().pipeline(transaction=False)
    for cid in connector_ids:
        pipe.lrange(events_key(cid), 0, EVENTS_KEPT - 1)
    now_ms = int(time.time() * 1000)
    return {
        cid: _snapshot_from(raw, window, now_ms)
        for cid, raw in zip(connector_ids, pipe.execute(), strict=True)
    }


# Per-process cache of what strategies read (success rates, latency), for a short TTL:
# decisions stay sub-millisecond, and a few seconds of staleness does not matter at that scale.
_stats_cache: dict[tuple, tuple[float, object]] = {}
_stats_lock = threading.Lock()


def _stats_ttl() -> float:
    return float(_setting("ROUTING_STATS_CACHE_SECONDS", 2.0))


def _stats_cache_clear_for(connector_id: str) -> None:
    if not _stats_cache:
        return
    with _stats_lock:
        for key in [k for k in _stats_cache if k[1] == connector_id]:
            _stats_cache.pop(key, None)


def _cached(keys: list[tuple], load) -> dict[tuple, object]:
    ttl = _stats_ttl()
    now = time.monotonic()
    found, missing = {}, []
    for key in keys:
        hit = _stats_cache.get(key)
        if hit is not None and now - hit[0] < ttl:
            found[key] = hit[1]
        else:
            missing.append(key)
    if missing:
        loaded = load(missing)
        if ttl > 0:
            with _stats_lock:
                for key, value in loaded.items():
                    _stats_cache[key] = (now, value)
        found.update(loaded)
    return found


@dataclass(frozen=True)
class AuthRate:
    rate: float  # smoothed (Laplace): (approved + 1) / (n + 2)
    samples: int
    level: str  # the segment the rate comes from, or "prior"

    def as_dict(self) -> dict:
        return {"rate": round(self.rate, 4), "samples": self.samples, "level": self.level}


def auth_rates(
    connector_ids: list[str], *, segment: str, facts: dict, window: int, min_samples: int
) -> dict[str, AuthRate]:
    """Rolling authorization rate per connector for this payment's segment; a segment with too
    few recent attempts falls back to the connector as a whole, then to an uninformed prior."""
    levels = [segment] if segment == "connector" else [segment, "connector"]
    keys = [
        ("auth", cid, level, segment_values(level, facts), window)
        for cid in connector_ids
        for level in levels
    ]

    def load(missing: list[tuple]) -> dict:
        pipe = client().pipeline(transaction=False)
        for _, cid, level, _values, size in missing:
            pipe.lrange(auth_key(cid, level, facts), 0, size - 1)
        return {
            key: (raw.count(b"1"), len(raw))
            for key, raw in zip(missing, pipe.execute(), strict=True)
        }

    try:
        counts = _cached(keys, load)
    except redis.RedisError:
        logger.exception("routing: success rates unavailable")
        counts = {}
    rates = {}
    for cid in connector_ids:
        rate = AuthRate(rate=0.5, samples=0, level="prior")
        for level in levels:
            ok, n = counts.get(("auth", cid, level, segment_values(level, facts), window), (0, 0))
            if n >= min_samples:
                rate = AuthRate(rate=(ok + 1) / (n + 2), samples=n, level=level)
                break
        rates[cid] = rate
    return rates


def latency_p95(connector_ids: list[str], *, min_samples: int) -> dict[str, int | None]:
    window = window_seconds()
    keys = [("latency", cid, window) for cid in connector_ids]

    def load(missing: list[tuple]) -> dict:
        snaps = snapshots([k[1] for k in missing], window)
        return {
            k: (
                snaps[k[1]].p95_latency_ms
                if snaps[k[1]].calls - snaps[k[1]].failures >= min_samples
                else None
            )
            for k in missing
        }

    try:
        values = _cached(keys, load)
    except redis.RedisError:
        logger.exception("routing: latency unavailable")
        values = {}
    return {cid: values.get(("latency", cid, window)) for cid in connector_ids}
