"""Velocity counters: sliding windows driven by explicit times, keys that never hold the raw
value, declines counted, and Redis away failing open."""

from __future__ import annotations

import redis
from django.conf import settings

from apps.risk import velocity

SIGNALS = {
    "card_fingerprint": "fp_abc123456",
    "email": "tester@example.com",
    "ip_address": "81.2.69.142",
    "customer": "cus_42",
    "amount": 1500,
}


def _read(now, event="pi_x", **overrides):
    counts, _ = velocity.record_and_read(
        merchant_id=1, livemode=False, signals={**SIGNALS, **overrides}, event_id=event, now=now
    )
    return counts


def test_windows_slide_and_declines_count():
    t0 = 1_800_000_000.0
    _read(t0, "pi_1")
    velocity.record_decline(merchant_id=1, livemode=False, signals=SIGNALS, event_id="pi_1", now=t0)
    counts = _read(t0 + 30, "pi_2", card_fingerprint="fp_other0000", amount=500)
    assert counts["charges_per_email_minutely"] == 2
    assert counts["declines_per_email_minutely"] == 1
    assert counts["cards_per_ip_minutely"] == 2
    assert counts["charges_per_card_minutely"] == 1  # another card
    # two hours later: the minute and hour windows are empty, the day still counts
    later = _read(t0 + 7200, "pi_3")
    assert (later["declines_per_card_minutely"], later["declines_per_card_hourly"]) == (0, 0)
    assert later["declines_per_card_daily"] == 1
    assert (later["charges_per_card_hourly"], later["charges_per_card_daily"]) == (1, 2)
    assert later["amount_per_card_daily"] == 3000
    assert later["amount_per_card_hourly"] == 1500


def test_keys_hold_keyed_hashes_never_the_values():
    _read(1_800_000_000.0)
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = b" ".join(client.keys("risk:v:*"))
    assert keys
    for value in ("fp_abc123456", "tester@example.com", "81.2.69.142", "cus_42"):
        assert value.encode() not in keys


def test_redis_away_fails_open(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    counts, generations = velocity.record_and_read(
        merchant_id=1, livemode=False, signals=SIGNALS, event_id="pi_x"
    )
    assert (counts, generations) == ({}, None)


def test_a_counter_saturates_instead_of_growing(monkeypatch):
    monkeypatch.setattr(velocity, "KEEP", 5)
    t0 = 1_800_000_000.0
    for n in range(8):
        counts = _read(t0 + n, f"pi_{n}")
    assert counts["charges_per_card_minutely"] == 5
    assert counts["amount_per_card_daily"] == 5 * 1500


def test_a_decline_carries_another_modules_commands_in_its_round_trip(settings):
    t0 = 1_800_000_000.0
    got = []

    def alongside(pipe):
        pipe.set("vault:cvc:pm_alongside", b"x")
        return got.append

    velocity.record_decline(
        merchant_id=1, livemode=False, signals=SIGNALS, event_id="pi_1", now=t0, alongside=alongside
    )
    assert got == [[True]]
    assert _read(t0 + 1, "pi_2")["declines_per_card_minutely"] == 1

    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there: each part is told
    velocity.record_decline(
        merchant_id=1, livemode=False, signals=SIGNALS, event_id="pi_3", alongside=alongside
    )
    assert isinstance(got[-1], redis.ConnectionError)
