"""Knobs of the events app, read from settings with these defaults."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # relay: outbox rows per transaction, and how many batches one task drains
    "EVENTS_RELAY_BATCH_SIZE": 500,
    "EVENTS_RELAY_MAX_BATCHES": 20,
    # a queued relay task suppresses further publishes this long at most (a lost task's flag
    # expires; the beat sweep covers the gap)
    "EVENTS_RELAY_QUEUED_TTL_SECONDS": 10,
    # how long a queued relay waits for more rows before it runs (events reach merchants this
    # much later; under load one task relays the rows of hundreds of payments)
    "EVENTS_RELAY_COALESCE_SECONDS": 0.2,
    # merchant webhooks: delay after the 1st, 2nd, … failure (about three days in total), each
    # stretched or shrunk at random by up to WEBHOOK_RETRY_JITTER; after the last, dead-letter
    "WEBHOOK_RETRY_SCHEDULE_SECONDS": [
        10,
        60,
        5 * 60,
        30 * 60,
        3600,
        3 * 3600,
        6 * 3600,
        12 * 3600,
        12 * 3600,
        12 * 3600,
        12 * 3600,
        12 * 3600,
    ],
    "WEBHOOK_RETRY_JITTER": 0.1,
    # retries due within this many seconds get a Celery countdown; later ones wait for the sweep
    "WEBHOOK_RETRY_COUNTDOWN_MAX_SECONDS": 300,
    "WEBHOOK_TIMEOUT_SECONDS": 10.0,
    "WEBHOOK_CONNECT_TIMEOUT_SECONDS": 3.0,
    "WEBHOOK_RESPONSE_BODY_CHARS": 500,
    "WEBHOOK_DELIVERY_CONCURRENCY": 16,  # HTTP requests in flight per worker process
    "WEBHOOK_DELIVERY_BATCH_SIZE": 50,  # deliveries per Celery task
    "WEBHOOK_DELIVERY_LEASE_SECONDS": 60,  # a claimed delivery is someone else's after this
    "WEBHOOK_ENDPOINT_DISABLE_AFTER_SECONDS": 3 * 24 * 3600,  # failing with no success since
    "WEBHOOK_ENDPOINTS_MAX_PER_MODE": 16,
    "WEBHOOK_SECRET_ROLL_DEFAULT_SECONDS": 24 * 3600,  # the old secret keeps signing this long
    "WEBHOOK_SECRET_ROLL_MAX_SECONDS": 7 * 24 * 3600,
    # inbound PSP webhooks
    "PSP_WEBHOOK_MAX_BODY_BYTES": 256 * 1024,
    # a verified notification nobody picked up after this long is taken by the sweep
    "PSP_WEBHOOK_SWEEP_GRACE_SECONDS": 10,
    # a claimed notification is someone else's after this: processing takes milliseconds, and
    # a worker that lost its database (restart, failover) mid-way leaves its claim behind, which
    # delayed the notification (and the merchant's events) by the whole lease. A second worker
    # taking over a slow one is safe: the handlers only move state forward, under row locks.
    "PSP_WEBHOOK_LEASE_SECONDS": 30,
    # connector (and decrypted secret) cached per process on the receiving hot path
    "PSP_WEBHOOK_CONNECTOR_CACHE_SECONDS": 5,
    # delays between processing tries (failures, or the payment not applicable yet); then dead
    "PSP_WEBHOOK_RETRY_SECONDS": [1, 2, 5, 10, 30, 60, 120, 300],
}


def conf(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])
