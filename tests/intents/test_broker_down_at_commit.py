"""Redis (the Celery broker) down when a payment commits: the merchant still gets the committed
payment's answer, and the beat sweeps do what the enqueue could not."""

import time

import pytest
from django.db import connection

from apps.intents.models import PaymentAttempt, PaymentIntent
from apps.intents.tasks import inquire_due_attempts
from tests.support.broker import broker_unreachable

pytestmark = pytest.mark.usefixtures("connectors")


@pytest.mark.django_db(transaction=True)
def test_unknown_outcome_with_the_broker_down_answers_and_the_sweep_inquires(
    pay, sim, connector_names, settings
):
    settings.INQUIRY_BACKOFF_SECONDS = [0, 0, 0]
    sim.faults(connector_names["stripe"], response_lost_rate=1.0, response_lost_delay_s=3)
    with broker_unreachable():
        started = time.monotonic()
        response = pay(amount=4400)
        elapsed = time.monotonic() - started
    # the inquiry could not be enqueued after the commit: the answer is the committed state,
    # not a 500 for a payment that exists
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "processing"
    assert elapsed < 5  # no publish waits for the broker (the PSP timeout is 1.5 s of it)
    attempt = PaymentAttempt.objects.get(intent__public_id=response.json()["id"])
    assert attempt.outcome == "unknown" and attempt.next_inquiry_at is not None

    # the broker is back: the beat sweep finds the attempt due and resolves it
    sim.faults(connector_names["stripe"])
    inquire_due_attempts()
    intent = PaymentIntent.objects.get(public_id=response.json()["id"])
    assert intent.status == "succeeded"
    assert len(sim.charges(connector_names["stripe"])) == 1
    connection.close()
