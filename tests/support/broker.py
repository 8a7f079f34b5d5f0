"""Points this process's Celery publisher at a broker address where nothing listens, as when
Redis is down: publishing fails with a real connection error."""

from __future__ import annotations

from contextlib import contextmanager

from payments_platform.celery import app

UNREACHABLE = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def _reset_pools() -> None:
    # the app looks its pools up again, now for the current address. Not closed: they live in
    # kombu's process-wide registry (kombu.pools), which would hand the closed pool out again
    # for the same address ("Acquire on closed pool") to every later publisher in this process
    app.amqp._producer_pool = None
    app._pool = None


@contextmanager
def broker_unreachable():
    saved = app.conf.broker_url
    app.conf.broker_url = UNREACHABLE
    _reset_pools()
    try:
        yield
    finally:
        app.conf.broker_url = saved
        _reset_pools()
