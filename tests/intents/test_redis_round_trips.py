"""The checkout path's Redis round trips, counted on the wire (not timed): the Redis half of the
performance guard that cannot flake (tests/intents/test_round_trips.py is the PostgreSQL half).
A change that adds a Redis command or pipeline to create+confirm, capture or refund fails here
with every round trip listed (its commands and the code that sent it); one that removes some
lowers the budget in the same commit.

Counted in the request's own thread after a warm-up payment: connection handshakes, script
loads, the breaker's first read and the broker's queue declarations happen once per process
(or per connection), not per payment. The outbox relay's flag stays set between payments here
(no worker clears it), so no broker publish is counted: in production a payment that commits
while no relay is queued adds one LPUSH to the broker."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings

from tests.support.redis_wire import count_redis

# Today's figures (measured 2026-12-03). create+confirm, approved:
#   SET relay flag (create's commit) | EVALSHA velocity (tx A) | SET relay flag (tx A's commit)
#   | MGET breaker + GET CVC (before the PSP call) | EVALSHA health and breaker (after it)
#   | DEL CVC (tx B) | SET relay flag (tx B's commit)
# A decline's CVC discard rides in the velocity counters' MULTI (tx B): also 7.
REDIS_BUDGET = {
    # velocity, breaker state + CVC, breaker/health record, CVC DEL, the relay flag after tx B
    # (8 before the CVC's read joined the breaker's and tx A became one statement whose rows
    # ride in tx B's relay)
    "create_confirm": 5,
    "create_confirm_manual": 5,  # idem
    "create_confirm_declined": 5,  # 9 before, with the decline's DEL and MULTI apart
    "capture": 1,  # the relay flag after tx B
    "refund": 2,  # the relay flag after tx A and after tx B
}


def _within(name: str, count) -> None:
    assert len(count) <= REDIS_BUDGET[name], (
        f"{name}: {len(count)} Redis round trips (budget {REDIS_BUDGET[name]}):\n{count.listing()}"
    )


@pytest.fixture
def redis_client():
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def confirm(api, tokenize):
    """Create + confirm with a card tokenized beforehand (tokenizing is not the payment's cost)."""

    def make(key: str, capture_method: str = "automatic", number: str = "4242424242424242"):
        body = {
            "amount": 2000,
            "currency": "eur",
            "capture_method": capture_method,
            "payment_method": tokenize(number),
            "confirm": True,
        }
        with count_redis() as count:
            response = api.post(
                "/v1/payment_intents", body, format="json", HTTP_IDEMPOTENCY_KEY=key
            )
        return response, count

    return make


@pytest.fixture
def warm(pay):
    """One payment first: per-process clients, scripts and breakers are set up once."""
    assert pay(key="warm-up").json()["status"] == "succeeded"


@pytest.mark.django_db(transaction=True)
def test_create_and_confirm_stays_within_its_redis_round_trips(confirm, stripe_connector, warm):
    response, count = confirm("order-1")
    assert response.status_code == 200 and response.json()["status"] == "succeeded"
    _within("create_confirm", count)
    # the card's CVC is read in the round trip that checks the breaker, not in one of its own
    assert ("MGET", "GET") in [trip.commands for trip in count.round_trips], count.listing()


@pytest.mark.django_db(transaction=True)
def test_a_declined_payment_stays_within_its_redis_round_trips(confirm, stripe_connector, warm):
    response, count = confirm("order-2", number="4000000000009987")  # lost_card: hard
    assert response.status_code == 402, response.content
    assert response.json()["error"]["decline_code"] == "lost_card"
    _within("create_confirm_declined", count)


@pytest.mark.django_db(transaction=True)
def test_capture_and_refund_stay_within_their_redis_round_trips(
    api, confirm, stripe_connector, warm
):
    response, count = confirm("order-3", capture_method="manual")
    assert response.json()["status"] == "requires_capture"
    _within("create_confirm_manual", count)
    intent_id = response.json()["id"]

    with count_redis() as count:
        captured = api.post(f"/v1/payment_intents/{intent_id}/capture", {}, format="json")
    assert captured.status_code == 200 and captured.json()["status"] == "succeeded"
    _within("capture", count)

    with count_redis() as count:
        refund = api.post(
            "/v1/refunds", {"payment_intent": intent_id, "amount": 500}, format="json"
        )
    assert refund.status_code == 200 and refund.json()["status"] == "succeeded", refund.content
    _within("refund", count)


@pytest.mark.django_db(transaction=True)
def test_the_counter_sees_an_added_round_trip(confirm, stripe_connector, warm, monkeypatch):
    """The guard can fail: one more command is one more round trip, a pipeline is one."""
    from apps.core.redis_client import checkout_redis
    from apps.intents import services

    _, baseline = confirm("order-4")
    original = services.intent_prepare

    def with_extra_redis(*args, **kwargs):
        client = checkout_redis(timeout=1)
        client.get("extra")
        client.pipeline(transaction=False).get("a").get("b").execute()
        return original(*args, **kwargs)

    monkeypatch.setattr(services, "intent_prepare", with_extra_redis)
    _, count = confirm("order-5")
    assert len(count) == len(baseline) + 2, count.listing()
    assert {("GET",), ("GET", "GET")} <= {trip.commands for trip in count.round_trips}


@pytest.mark.django_db(transaction=True)
def test_the_vaults_cvc_reaches_the_psp_through_the_breakers_round_trip(
    api, stripe_connector, warm, tokenize, redis_client
):
    """What the combined read hands the PSP is the vault's CVC: one the PSP refuses as
    malformed (sealed into Redis here; the vault would never accept it) declines the payment
    `invalid_cvc`, where the same card with its own CVC was approved (warm)."""
    from apps.vault import services as vault_services
    from apps.vault.models import PaymentMethod

    pm = tokenize()
    redis_client.set(vault_services.cvc_redis_key(pm), vault_services._seal_cvc(pm, "12x"))
    response = api.post(
        "/v1/payment_intents",
        {"amount": 2000, "currency": "eur", "payment_method": pm, "confirm": True},
        format="json",
    )
    assert response.status_code == 402, response.content
    assert response.json()["error"]["decline_code"] == "invalid_cvc"
    assert PaymentMethod.objects.get(public_id=pm).cvc_discarded_at is not None
    assert redis_client.get(vault_services.cvc_redis_key(pm)) is None


@pytest.mark.django_db(transaction=True)
def test_with_redis_away_the_payment_goes_through_without_its_cvc(
    api, stripe_connector, warm, tokenize, settings, caplog
):
    """The shared round trips degrade as the separate ones did: no CVC (the PSP is asked
    without one), breakers closed, health unrecorded; the payment succeeds and the CVC is
    marked discarded in the database, which stops any later use."""
    from apps.vault.models import PaymentMethod

    pm = tokenize()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = api.post(
        "/v1/payment_intents",
        {"amount": 2000, "currency": "eur", "payment_method": pm, "confirm": True},
        format="json",
    )
    assert response.status_code == 200 and response.json()["status"] == "succeeded"
    assert f"CVC of {pm} unreadable (Redis unavailable); going without" in caplog.text
    assert "Redis unavailable, calling through" in caplog.text
    assert PaymentMethod.objects.get(public_id=pm).cvc_discarded_at is not None
