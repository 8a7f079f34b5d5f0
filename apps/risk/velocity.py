"""Velocity counters in Redis (docs/risk.md "Velocity").

One sorted set per (merchant, mode, counter, value), its members scored by time, so a window is
a ZCOUNT over its last minute, hour or day (sliding, not bucketed). The value is never stored:
keys carry an HMAC-SHA256 of it under settings.RISK_VELOCITY_KEY. Per payment, one script call
(atomic, server-side) records the attempt (charges, cards, amount) and reads every window, and
the same round trip reads the merchant's rule generation; a payment that ends declined (or
blocked) adds one more, recording the decline. Redis away: the counters read 0 and the payment
goes on."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from functools import lru_cache

from django.conf import settings

from apps.core.redis_client import Queued, checkout_redis, one_round_trip
from apps.risk.lang import WINDOWS

logger = logging.getLogger(__name__)

_SECONDS = {"minutely": 60, "hourly": 3600, "daily": 86400}
DAY = 86400
# at most this many members a set (the latest): a counter saturates at KEEP a day, and no
# payment's script call grows with a card's history (a card tester's thousands of attempts)
KEEP = 1000
# dimension -> signal holding its value
DIMENSIONS = {
    "card": "card_fingerprint",
    "email": "email",
    "ip": "ip_address",
    "customer": "customer",
}


@lru_cache(maxsize=1)
def _key_bytes() -> bytes:
    return settings.RISK_VELOCITY_KEY.encode()


def keyed_hash(kind: str, value: str) -> str:
    return hmac.new(_key_bytes(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:32]


def _client():
    return checkout_redis(timeout=settings.RISK_REDIS_TIMEOUT_SECONDS, retries=0)


def generation_key(merchant_id: int, livemode: bool) -> str:
    return f"risk:gen:{merchant_id}:{int(livemode)}"


PLATFORM_GENERATION_KEY = "risk:gen:platform"


def _prefix(merchant_id: int, livemode: bool) -> str:
    return f"risk:v:{merchant_id}:{int(livemode)}"


# The whole record-and-read as one server-side script: one command, one reply, atomic (no
# other payment's update interleaves), and a fraction of the client CPU of a 60-command pipeline.
# KEYS: the two generation counters, then one sorted set per op in ARGV[5]: c = record this
# payment and count, d = count only, k = record the card (distinct cards) and count, a = record
# the amount and sum it. Each op answers its minute, hour and day figures.
_SCRIPT = """
local now = tonumber(ARGV[1])
local event, amount, card, spec = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local keep = tonumber(ARGV[6])
local out = {redis.call('GET', KEYS[1]) or '', redis.call('GET', KEYS[2]) or ''}
local windows = {60, 3600, 86400}
for i = 1, #spec do
  local op = string.sub(spec, i, i)
  local key = KEYS[i + 2]
  if op ~= 'd' then
    local member = event
    if op == 'k' then member = card elseif op == 'a' then member = event .. ':' .. amount end
    redis.call('ZADD', key, now, member)
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - 86400)
    redis.call('ZREMRANGEBYRANK', key, 0, -(keep + 1))
    redis.call('EXPIRE', key, 86460)
  end
  if op == 'a' then
    local rows = redis.call('ZRANGEBYSCORE', key, now - 86400, '+inf', 'WITHSCORES')
    local sums = {0, 0, 0}
    for j = 1, #rows, 2 do
      local value = tonumber(string.match(rows[j], ':(%d+)$')) or 0
      local at = tonumber(rows[j + 1])
      for w = 1, 3 do
        if at >= now - windows[w] then sums[w] = sums[w] + value end
      end
    end
    for w = 1, 3 do out[#out + 1] = sums[w] end
  else
    for w = 1, 3 do out[#out + 1] = redis.call('ZCOUNT', key, now - windows[w], '+inf') end
  end
end
return out
"""


@lru_cache(maxsize=4)
def _script(client):
    return client.register_script(_SCRIPT)


def record_and_read(
    *, merchant_id: int, livemode: bool, signals: dict, event_id: str, now: float | None = None
) -> tuple[dict[str, int], tuple | None]:
    """Records the attempt and returns ({counter_window: value}, (merchant generation, platform
    generation)), in one round trip (one script call); ({}, None) when Redis did not answer."""
    now = time.time() if now is None else now
    prefix = _prefix(merchant_id, livemode)
    hashes = {d: keyed_hash(d, signals[s]) for d, s in DIMENSIONS.items() if signals.get(s)}
    card = hashes.get("card", "")
    keys = [generation_key(merchant_id, livemode), PLATFORM_GENERATION_KEY]
    names, spec = [], []
    for dim, h in hashes.items():
        keys += [f"{prefix}:c:{dim}:{h}", f"{prefix}:d:{dim}:{h}"]
        names += [f"charges_per_{dim}", f"declines_per_{dim}"]
        spec += ["c", "d"]
        if dim in ("email", "ip") and card:
            keys.append(f"{prefix}:k:{dim}:{h}")
            names.append(f"cards_per_{dim}")
            spec.append("k")
    if card:
        keys.append(f"{prefix}:a:card:{card}")
        names.append("amount_per_card")
        spec.append("a")
    try:
        client = _client()
        replies = _script(client)(
            keys=keys,
            args=[repr(now), event_id, int(signals["amount"]), card, "".join(spec), KEEP],
        )
    except Exception as exc:  # Redis away: fail open, the rules see zeros
        logger.warning("risk velocity unavailable: %s", type(exc).__name__)
        return {}, None
    generations = (replies[0], replies[1])
    counts: dict[str, int] = {}
    i = 2
    for name in names:
        for window in WINDOWS:
            counts[f"{name}_{window}"] = int(replies[i])
            i += 1
    return counts, generations


def _add(pipe, key: str, members: dict, now: float) -> None:
    pipe.zadd(key, members)
    pipe.zremrangebyscore(key, "-inf", now - DAY)
    pipe.zremrangebyrank(key, 0, -(KEEP + 1))
    pipe.expire(key, DAY + 60)


def record_decline(
    *,
    merchant_id: int,
    livemode: bool,
    signals: dict,
    event_id: str,
    now: float | None = None,
    alongside: Queued | None = None,
) -> None:
    """A payment ended declined (by the issuer or blocked by a rule): one more pipeline, which
    also carries `alongside`, another module's commands (the CVC's discard)."""
    try:
        queued = record_decline_on(
            merchant_id=merchant_id, livemode=livemode, signals=signals, event_id=event_id, now=now
        )
    except Exception as exc:
        _decline_not_counted(exc)
        queued = None
    parts = [part for part in (alongside, queued) if part is not None]
    if parts:
        one_round_trip(_client(), *parts, transaction=True)


def record_decline_on(
    *, merchant_id: int, livemode: bool, signals: dict, event_id: str, now: float | None = None
) -> Queued:
    """`record_decline` for a pipeline another module executes."""
    now = time.time() if now is None else now
    prefix = _prefix(merchant_id, livemode)
    keys = [
        f"{prefix}:d:{dim}:{keyed_hash(dim, signals[signal])}"
        for dim, signal in DIMENSIONS.items()
        if signals.get(signal)
    ]

    def queue(pipe) -> Callable[[list | Exception], None]:
        for key in keys:
            _add(pipe, key, {event_id: now}, now)

        def take(replies: list | Exception) -> None:
            if isinstance(replies, Exception):
                replies = [replies]
            errors = [reply for reply in replies if isinstance(reply, Exception)]
            if errors:
                _decline_not_counted(errors[0])

        return take

    return queue


def _decline_not_counted(exc: Exception) -> None:
    logger.warning("risk velocity unavailable (decline not counted): %s", type(exc).__name__)


def generation_bump(merchant_id: int | None, livemode: bool) -> None:
    """Rules or lists changed: every process recompiles on its next payment."""
    key = PLATFORM_GENERATION_KEY if merchant_id is None else generation_key(merchant_id, livemode)
    try:
        checkout_redis(timeout=1.0).incr(key)
    except Exception as exc:
        logger.warning("risk generation not bumped: %s", type(exc).__name__)
