"""Redis clients for code on the checkout path: one per (URL, timeout, retries) per process,
with short timeouts, so a Redis that does not answer costs a payment milliseconds, not
seconds (each caller has its fallback: breakers closed, the relay sweep, …)."""

from __future__ import annotations

from collections.abc import Callable
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


# A module's Redis commands that ride in a round trip another module makes: `queue(pipe)` queues
# them on that pipeline and returns the function that takes their replies (its own, in order,
# an error as an exception instance), or the RedisError of a round trip that failed, after
# which each module degrades on its own terms, as it would alone. Queuing never raises.
Reply = list | redis.RedisError
Queued = Callable[[redis.client.Pipeline], Callable[[Reply], None]]


def one_round_trip(client: redis.Redis, *parts: Queued, transaction: bool = False) -> None:
    """Every part's commands in one pipeline (MULTI/EXEC with `transaction`), one round trip;
    each part takes its own replies."""
    pipe = client.pipeline(transaction=transaction)
    takers = []
    for queue in parts:
        start = len(pipe)
        take = queue(pipe)
        takers.append((take, start, len(pipe)))
    try:
        replies: list | redis.RedisError = pipe.execute(raise_on_error=False)
    except redis.RedisError as exc:
        replies = exc
    for take, start, end in takers:
        take(replies if isinstance(replies, redis.RedisError) else replies[start:end])
