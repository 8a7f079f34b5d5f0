"""What an inquiry may conclude about a payment whose outcome is unknown: only an
authoritative, well-formed answer says "not charged" (a decline, a processed failure, a lookup
that found no such payment once it could); a 404 from the lookup endpoint itself, a 401, a 429
or a 5xx proves nothing and keeps the payment unknown. Each dialect resolves its unknowns the way
its PSP documents (docs/psp-simulator.md, docs/architecture.md "Unknown outcomes")."""

from datetime import timedelta

import pytest

from apps.events.models import OutboxEvent
from apps.intents import services
from apps.intents.models import PaymentAttempt, PaymentIntent


@pytest.fixture
def connector_of(request):
    """Only the given dialect's connector, so every payment goes there."""

    def make(dialect: str):
        return request.getfixturevalue(f"{dialect}_connector")

    return make


def _lost_authorization(pay, sim, name, **extra):
    """A payment whose authorization the PSP processed but whose answer never arrived."""
    sim.faults(name, response_lost_rate=1.0, response_lost_delay_s=3)
    body = pay(amount=4600, **extra).json()
    assert body["status"] == "processing"
    attempt = PaymentAttempt.objects.get(intent__public_id=body["id"])
    assert attempt.outcome == "unknown"
    return attempt


def _failed_events(intent_public_id: str) -> int:
    return OutboxEvent.objects.filter(
        object_id=intent_public_id, event_type="payment_intent.payment_failed"
    ).count()


@pytest.mark.parametrize("dialect", ["stripe", "adyen"])
@pytest.mark.parametrize(
    "answer",
    [
        {"rejected_rate": 1.0, "rejected_status": 404},  # the lookup endpoint itself is missing
        {"rejected_rate": 1.0, "rejected_status": 401},
        {"rejected_rate": 1.0, "rejected_status": 429},
        {"error_500_rate": 1.0},
        {"error_503_rate": 1.0},
    ],
    ids=["404", "401", "429", "500", "503"],
)
def test_an_inquiry_answer_that_proves_nothing_keeps_the_payment_unknown(
    pay, sim, connector_names, dialect, answer, connector_of
):
    connector_of(dialect)
    name = connector_names[dialect]
    attempt = _lost_authorization(pay, sim, name)
    intent = attempt.intent

    sim.faults(name, **answer)  # every request of the inquiry gets this answer
    services.attempt_inquire(attempt_id=attempt.pk)

    attempt.refresh_from_db()
    intent.refresh_from_db()
    assert attempt.outcome == "unknown"
    assert attempt.next_inquiry_at is not None  # the inquiry goes on
    assert intent.status == "processing"
    assert _failed_events(intent.public_id) == 0  # the merchant was not told it failed

    # once the PSP answers properly, the charge it holds is found: exactly one
    sim.faults(name)
    services.attempt_inquire(attempt_id=attempt.pk)
    intent.refresh_from_db()
    assert intent.status == "succeeded" and intent.amount_received == 4600
    assert len(sim.charges(name)) == 1


def test_stripe_search_without_a_match_proves_absence_once_settled(
    pay, sim, connector_names, stripe_connector
):
    # the connection was cut before Stripe processed anything; a day later (past the key's
    # life, so no re-send) a well-formed search result without a match is Stripe's "no such
    # payment": the payment failed, and nothing was charged
    name = connector_names["stripe"]
    sim.faults(name, outage=True, outage_mode="drop")
    body = pay(amount=4700).json()
    attempt = PaymentAttempt.objects.get(intent__public_id=body["id"])
    PaymentAttempt.objects.filter(pk=attempt.pk).update(
        started_at=attempt.started_at - timedelta(hours=22)
    )
    sim.faults(name)
    services.attempt_inquire(attempt_id=attempt.pk)
    attempt.refresh_from_db()
    intent = PaymentIntent.objects.get(public_id=body["id"])
    assert attempt.outcome == "error" and attempt.raw_code == "not_found"
    assert intent.status == "requires_payment_method"
    assert _failed_events(intent.public_id) == 1
    assert sim.charges(name) == []


def test_adyen_refusal_on_the_idempotent_re_send_is_authoritative(
    pay, sim, connector_names, adyen_connector
):
    name = connector_names["adyen"]
    attempt = _lost_authorization(pay, sim, name, number="4000000000009995")  # insufficient funds
    sim.faults(name)
    services.attempt_inquire(attempt_id=attempt.pk)
    attempt.refresh_from_db()
    assert attempt.outcome == "soft_decline" and attempt.decline_code == "insufficient_funds"
    intent = PaymentIntent.objects.get(pk=attempt.intent_id)
    assert intent.status == "requires_payment_method"
    assert [c["status"] for c in sim.charges(name)] == ["declined"]


def test_an_adyen_5xx_with_a_psp_reference_resolves_at_the_first_inquiry(
    pay, sim, connector_names, adyen_connector
):
    # Adyen's error bodies carry a pspReference (of the failed request, not of a payment): it
    # must not turn the inquiry into a lookup Adyen has no API for. The idempotent re-send
    # answers at once, with the one charge the 500 hid.
    name = connector_names["adyen"]
    sim.faults(name, processed_then_500_rate=1.0)
    body = pay(amount=4800).json()
    assert body["status"] == "processing"
    attempt = PaymentAttempt.objects.get(intent__public_id=body["id"])
    assert attempt.outcome == "unknown" and attempt.psp_reference == ""
    assert "Adyen request" in attempt.raw_message
    sim.faults(name)
    services.attempt_inquire(attempt_id=attempt.pk)
    attempt.refresh_from_db()
    assert attempt.outcome == "approved" and attempt.inquiry_count == 1
    charges = sim.charges(name)
    assert len(charges) == 1 and attempt.psp_reference == charges[0]["payment_id"]
    assert PaymentIntent.objects.get(pk=attempt.intent_id).status == "succeeded"


def test_an_adyen_unknown_past_the_key_window_waits_for_the_webhook(
    pay, sim, connector_names, adyen_connector
):
    name = connector_names["adyen"]
    attempt = _lost_authorization(pay, sim, name)
    PaymentAttempt.objects.filter(pk=attempt.pk).update(
        started_at=attempt.started_at - timedelta(days=31)
    )
    sim.faults(name)
    services.attempt_inquire(attempt_id=attempt.pk)
    attempt.refresh_from_db()
    assert attempt.outcome == "unknown" and attempt.inquiry_count == 1
    assert len(sim.charges(name)) == 1  # no second charge from a re-send Adyen forgot
