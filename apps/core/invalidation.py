"""How every process learns at once that a process-local cache is stale: Redis pub/sub.

One subscriber thread per process (started on first use, so after a gunicorn fork) listens on
one channel per registered topic (`routing`, `apikeys`, …) and hands each message to its
topic's callback. `connected` is True only while subscribed; every (re)connection and every
loss bumps `epoch` and calls each callback with "*" (everything may be stale: messages may
have been missed). A cache may serve its copy only while `connected` and only a copy loaded
in the current `epoch`; otherwise it reads the source (routing compares a Redis token, the API
key cache reads the database).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable

import redis
from django.conf import settings

logger = logging.getLogger(__name__)


def channel(topic: str) -> str:
    # pub/sub ignores the database number: keep environments sharing a Redis apart
    db = redis.Redis.from_url(settings.REDIS_URL).connection_pool.connection_kwargs.get("db", 0)
    return f"{topic}:invalidate:{db}"


class InvalidationListener:
    def __init__(self) -> None:
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._topics: dict[str, Callable[[str], None]] = {}
        self.connected = False
        self.epoch = 0
        self._last_warning = -1e9

    def register(self, topic: str, callback: Callable[[str], None]) -> None:
        """`callback(message)` for each message on the topic's channel, `callback("*")` on
        every (re)connection or loss. Register at import, before the first ensure_started."""
        self._topics[topic] = callback

    def ensure_started(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self.connected = False
            threading.Thread(target=self._run, name="cache-invalidations", daemon=True).start()

    def _everything_stale(self) -> None:
        for callback in list(self._topics.values()):
            callback("*")

    def _run(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            pubsub = conn = None
            try:
                conn = redis.Redis.from_url(
                    settings.REDIS_URL, socket_connect_timeout=1, health_check_interval=15
                )
                pubsub = conn.pubsub()
                by_channel = {channel(topic): cb for topic, cb in self._topics.items()}
                pubsub.subscribe(*by_channel)
                confirmed = 0
                while confirmed < len(by_channel):
                    msg = pubsub.get_message(timeout=2.0)
                    if msg is not None and msg["type"] == "subscribe":
                        confirmed += 1
                self.epoch += 1
                self._everything_stale()
                self.connected = True
                while self._pid == pid:
                    msg = pubsub.get_message(timeout=1.0)
                    if msg is not None and msg["type"] == "message":
                        callback = by_channel.get(msg["channel"].decode())
                        if callback is not None:
                            callback(msg["data"].decode())
            except Exception:
                if time.monotonic() - self._last_warning > 60:  # once a minute, not a second
                    self._last_warning = time.monotonic()
                    logger.warning(
                        "cache invalidation listener lost Redis; caches read their source on "
                        "every use meanwhile",
                        exc_info=True,
                    )
            finally:
                self.connected = False
                self.epoch += 1
                self._everything_stale()
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()
                        conn.close()
            time.sleep(1.0)


listener = InvalidationListener()
