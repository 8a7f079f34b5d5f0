"""Redis clients for code on the checkout path: one per (URL, timeout, retries) per process,
with short timeouts, so a Redis that does not answer costs a payment milliseconds, not
seconds (each caller has its fallback: breakers closed, the relay sweep, …)."""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry


@lru_cache(maxsize=16)
def _client(url: str, timeout: float, retries: int | None) -> redis.Redis:
    options: dict = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if retries is not None:  # else redis-py's default retry policy
        options["retry"] = Retry(NoBackoff(), retries)
    return redis.Redis.from_url(url, **options)


def checkout_redis(*, timeout: float, retries: int | None = None) -> redis.Redis:
    """The shared client for settings.REDIS_URL with these timeouts (seconds); `retries`:
    immediate retries on a connection error."""
    return _client(settings.REDIS_URL, timeout, retries)
