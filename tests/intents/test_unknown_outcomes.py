"""A PSP that processed the charge but whose response was lost: the intent stays processing,
nothing fails over, and an inquiry (by a real Celery worker) resolves it with exactly one
charge at the PSP."""

import time
from datetime import timedelta

import pytest
from django.db import connection

from apps.intents import services
from apps.intents.models import PaymentAttempt, PaymentIntent
from tests.support.celery_worker import running_worker

pytestmark = pytest.mark.usefixtures("connectors")


def test_lost_response_leaves_the_intent_processing_without_failover(pay, sim, connector_names):
    sim.faults(connector_names["stripe"], response_lost_rate=1.0, response_lost_delay_s=3)
    response = pay(amount=4200)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "processing"
    intent = PaymentIntent.objects.get(public_id=body["id"])
    attempts = list(intent.attempts.all())
    assert [a.outcome for a in attempts] == ["unknown"]  # no second connector tried
    assert sim.charges(connector_names["adyen"]) == []
    assert len(sim.charges(connector_names["stripe"])) == 1

    # the inquiry asks with the same key: still one charge, and the intent completes
    sim.faults(connector_names["stripe"])
    services.attempt_inquire(attempt_id=attempts[0].pk)
    intent.refresh_from_db()
    assert intent.status == "succeeded"
    assert intent.amount_received == 4200
    assert len(sim.charges(connector_names["stripe"])) == 1


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_resolves_the_unknown_outcome(pay, sim, connector_names, settings):
    settings.INQUIRY_BACKOFF_SECONDS = [1, 1, 2, 4]
    sim.faults(connector_names["stripe"], response_lost_rate=1.0, response_lost_delay_s=3)
    with running_worker():
        body = pay(amount=4300, capture_method="manual").json()
        assert body["status"] == "processing"
        sim.faults(connector_names["stripe"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = PaymentIntent.objects.get(public_id=body["id"]).status
            if status != "processing":
                break
            time.sleep(0.3)
    assert status == "requires_capture"
    attempt = PaymentAttempt.objects.get(intent__public_id=body["id"])
    assert attempt.outcome == "approved" and attempt.inquiry_count >= 1
    assert len(sim.charges(connector_names["stripe"])) == 1
    connection.close()


def test_inquiries_exhausted_flags_the_intent_for_ops(pay, sim, connector_names, settings):
    settings.INQUIRY_BACKOFF_SECONDS = [0, 0]
    sim.faults(connector_names["stripe"], outage=True)
    sim.faults(connector_names["stripe"], response_lost_rate=1.0, response_lost_delay_s=3)
    body = pay().json()
    assert body["status"] == "processing"
    sim.faults(connector_names["stripe"], outage=True)  # the PSP stays unreachable
    attempt = PaymentAttempt.objects.get(intent__public_id=body["id"])
    for _ in range(2):
        services.attempt_inquire(attempt_id=attempt.pk)
    intent = PaymentIntent.objects.get(public_id=body["id"])
    attempt.refresh_from_db()
    assert attempt.outcome == "unknown" and attempt.inquiry_count == 2
    assert intent.needs_review is True
    assert intent.status == "processing"


@pytest.mark.parametrize(
    ("hours_ago", "charges", "outcome"), [(1, 1, "approved"), (21, 0, "error")]
)
def test_an_inquiry_re_sends_the_original_only_while_the_psp_remembers_its_key(
    pay, sim, connector_names, hours_ago, charges, outcome
):
    # the connection is cut before the PSP processed anything: nothing is charged and there is
    # no PSP reference, so the only way to learn the outcome is an idempotent re-send
    sim.faults(connector_names["stripe"], outage=True, outage_mode="drop")
    body = pay(amount=4400).json()
    assert body["status"] == "processing"
    attempt = PaymentAttempt.objects.get(intent__public_id=body["id"])
    assert attempt.outcome == "unknown" and not attempt.psp_reference
    PaymentAttempt.objects.filter(pk=attempt.pk).update(
        started_at=attempt.started_at - timedelta(hours=hours_ago)
    )
    sim.faults(connector_names["stripe"])
    services.attempt_inquire(attempt_id=attempt.pk)
    attempt.refresh_from_db()
    assert len(sim.charges(connector_names["stripe"])) == charges
    # within the window the re-send is the (only) charge; past it the key may be forgotten at
    # the PSP and a re-send could charge twice, so none is sent: Stripe's settled search without
    # a match is what proves the payment absent (tests/intents/test_inquiry_answers.py)
    assert attempt.outcome == outcome
