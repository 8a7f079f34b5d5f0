"""After the load: wait (bounded) until the platform has settled — no intent processing, no
attempt unknown, no refund pending, the outbox drained, every webhook delivery and PSP
notification done — reading the soak's database directly (the soak is a test tool)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg
import requests

OPEN_WORK = """
SELECT
  (SELECT count(*) FROM intents_paymentintent WHERE status = 'processing'),
  (SELECT count(*) FROM intents_paymentattempt WHERE outcome IN ('unknown', 'pending')),
  (SELECT count(*) FROM intents_refund WHERE status = 'pending'),
  (SELECT count(*) FROM events_outboxevent WHERE relayed_at IS NULL),
  (SELECT count(*) FROM events_webhookdelivery WHERE status = 'pending'),
  (SELECT count(*) FROM events_inboundwebhook
     WHERE status IN ('received', 'pending', 'processing', 'retrying')),
  -- the next moment something is scheduled to happen to the open work
  LEAST(
    (SELECT min(next_inquiry_at) FROM intents_paymentattempt WHERE outcome = 'unknown'),
    (SELECT min(next_inquiry_at) FROM intents_refund WHERE status = 'pending'),
    (SELECT min(next_attempt_at) FROM events_webhookdelivery WHERE status = 'pending'),
    (SELECT min(next_attempt_at) FROM events_inboundwebhook
       WHERE status IN ('received', 'pending', 'processing', 'retrying'))
  )
"""
NAMES = (
    "intents processing",
    "attempts unknown or unanswered",
    "refunds pending",
    "outbox rows unrelayed",
    "webhook deliveries pending",
    "PSP notifications open",
)


@dataclass
class Settled:
    settled: bool
    seconds: float
    remaining: dict[str, int]
    why: str


def open_work(database_url: str) -> tuple[dict[str, int], float | None]:
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        row = conn.execute(OPEN_WORK).fetchone()
    counts = dict(zip(NAMES, row[:6], strict=True))
    next_due = row[6].timestamp() if row[6] is not None else None
    return counts, next_due


def sim_webhooks_pending(sim_url: str) -> int:
    try:
        requests.post(f"{sim_url}/_sim/webhooks/flush", timeout=5)
        data = requests.get(f"{sim_url}/_sim/webhooks", timeout=10).json()["data"]
    except (requests.RequestException, ValueError, KeyError):
        return 0
    return sum(1 for d in data if d["status"] in ("held", "scheduled"))


def wait_settled(
    database_url: str, sim_url: str, *, seconds: float, stall_seconds: float, log
) -> Settled:
    started = time.monotonic()
    deadline = started + seconds
    last: tuple | None = None
    last_change = started
    counts: dict[str, int] = {}
    while True:
        try:
            counts, next_due = open_work(database_url)
        except psycopg.Error as exc:
            log(f"settle: database not answering ({type(exc).__name__}); waiting")
            counts, next_due = {}, None
        else:
            counts["PSP webhooks still queued at the simulator"] = sim_webhooks_pending(sim_url)
            if not any(counts.values()):
                return Settled(True, time.monotonic() - started, counts, "settled")
        now = time.monotonic()
        snapshot = tuple(sorted(counts.items()))
        if snapshot != last:
            last, last_change = snapshot, now
            busy = ", ".join(f"{name} {n}" for name, n in counts.items() if n)
            log(f"settle: {now - started:5.0f} s  {busy or 'waiting for the database'}")
        if now >= deadline:
            return Settled(False, now - started, counts, f"not settled within {seconds:g} s")
        # nothing moved for a while and nothing is scheduled before the deadline: stuck
        due_in = (next_due - time.time()) if next_due is not None else None
        # overdue work may still be leased to a killed worker (leases: 60 s for deliveries,
        # 120 s for PSP notifications); overdue by more than that, it is not coming
        scheduled_soon = due_in is not None and -180 < due_in < deadline - now
        if now - last_change >= stall_seconds and counts and not scheduled_soon:
            return Settled(
                False, now - started, counts, f"stuck: nothing moved for {stall_seconds:g} s"
            )
        time.sleep(2.0)
