"""Velocity counters in Redis (docs/risk.md "Velocity").

One sorted set per (merchant, mode, counter, value), its members scored by time, so a window is
a ZCOUNT over its last minute, hour or day (sliding, not bucketed). The value is never stored:
keys carry an HMAC-SHA256 of it under settings.RISK_VELOCITY_KEY. Per payment, one pipeline
(MULTI/EXEC) records the attempt (charges, cards, amount) and reads every window, and the same
round trip reads the merchant's rule generation; a payment that ends declined (or blocked) adds
one more, recording the decline. Redis away: the counters read 0 and the payment goes on."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from functools import lru_cache

from django.conf import settings

from apps.core.redis_client import checkout_redis
from apps.risk.lang import WINDOWS

logger = logging.getLogger(__name__)

_SECONDS = {"minutely": 60, "hourly": 3600, "daily": 86400}
DAY = 86400
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


def record_and_read(
    *, merchant_id: int, livemode: bool, signals: dict, event_id: str, now: float | None = None
) -> tuple[dict[str, int], tuple]:
    """Records the attempt and returns ({counter_window: value}, (merchant generation, platform
    generation)), in one round trip."""
    now = time.time() if now is None else now
    prefix = _prefix(merchant_id, livemode)
    hashes = {d: keyed_hash(d, signals[s]) for d, s in DIMENSIONS.items() if signals.get(s)}
    card = hashes.get("card")
    pipe_ops: list[tuple[str, str]] = []  # (counter name, key) read with 3 ZCOUNTs each
    try:
        pipe = _client().pipeline(transaction=True)
        pipe.get(generation_key(merchant_id, livemode))
        pipe.get(PLATFORM_GENERATION_KEY)
        for dim, h in hashes.items():
            charges = f"{prefix}:c:{dim}:{h}"
            _add(pipe, charges, {event_id: now}, now)
            pipe_ops.append((f"charges_per_{dim}", charges))
            pipe_ops.append((f"declines_per_{dim}", f"{prefix}:d:{dim}:{h}"))
            if dim in ("email", "ip") and card:
                cards = f"{prefix}:k:{dim}:{h}"
                _add(pipe, cards, {card: now}, now)
                pipe_ops.append((f"cards_per_{dim}", cards))
        amount_key = None
        if card:
            amount_key = f"{prefix}:a:card:{card}"
            _add(pipe, amount_key, {f"{event_id}:{signals['amount']}": now}, now)
        for _, key in pipe_ops:
            for window in WINDOWS:
                pipe.zcount(key, now - _SECONDS[window], "+inf")
        if amount_key:
            pipe.zrangebyscore(amount_key, now - DAY, "+inf", withscores=True)
        replies = pipe.execute()
    except Exception as exc:  # Redis away: fail open, the rules see zeros
        logger.warning("risk velocity unavailable: %s", type(exc).__name__)
        return {}, (None, None)
    generations = (replies[0], replies[1])
    counts: dict[str, int] = {}
    reads = replies[len(replies) - len(pipe_ops) * 3 - (1 if amount_key else 0) :]
    i = 0
    for name, _ in pipe_ops:
        for window in WINDOWS:
            counts[f"{name}_{window}"] = int(reads[i])
            i += 1
    if amount_key:
        for window in WINDOWS:
            since = now - _SECONDS[window]
            counts[f"amount_per_card_{window}"] = sum(
                int(member.rsplit(b":", 1)[1]) for member, score in reads[i] if score >= since
            )
    return counts, generations


def _add(pipe, key: str, members: dict, now: float) -> None:
    pipe.zadd(key, members)
    pipe.zremrangebyscore(key, "-inf", now - DAY)
    pipe.expire(key, DAY + 60)


def record_decline(
    *, merchant_id: int, livemode: bool, signals: dict, event_id: str, now: float | None = None
) -> None:
    """A payment ended declined (by the issuer or blocked by a rule): one more pipeline."""
    now = time.time() if now is None else now
    prefix = _prefix(merchant_id, livemode)
    try:
        pipe = _client().pipeline(transaction=True)
        for dim, signal in DIMENSIONS.items():
            if signals.get(signal):
                _add(
                    pipe,
                    f"{prefix}:d:{dim}:{keyed_hash(dim, signals[signal])}",
                    {event_id: now},
                    now,
                )
        pipe.execute()
    except Exception as exc:
        logger.warning("risk velocity unavailable (decline not counted): %s", type(exc).__name__)


def generation_bump(merchant_id: int | None, livemode: bool) -> None:
    """Rules or lists changed: every process recompiles on its next payment."""
    key = PLATFORM_GENERATION_KEY if merchant_id is None else generation_key(merchant_id, livemode)
    try:
        checkout_redis(timeout=1.0).incr(key)
    except Exception as exc:
        logger.warning("risk generation not bumped: %s", type(exc).__name__)
