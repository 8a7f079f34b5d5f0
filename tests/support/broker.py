"""Points this process's Celery publisher at a broker address where nothing listens, as when
Redis is down: publishing fails with a real connection error."""

from __future__ import annotations

from contextlib import contextmanager

from payments_platform.celery import app

UNREACHABLE = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def _reset_pools() -> None:
    # the publisher's pooled connections belong to the old address
    if app.amqp._producer_pool is not None:
        app.amqp._producer_pool.force_close_all()
    app.amqp._producer_pool = None
    if app._pool is not None:
        app._pool.force_close_all()
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
