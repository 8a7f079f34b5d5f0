"""The failover step (tx B of a failed attempt that moves on to the next connector) is one SQL
statement, the only implementation of failover: it writes the failed attempt's result, its
outbox row and the next attempt, owes and enqueues the outbox relay, and changes nothing when
the attempt or the intent moved meanwhile; tx B's explicit branches then decide (the attempt
was answered: nothing to do; the intent is not processing this authorization as the step needs:
the decline is recorded and the payment fails, never left processing)."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from apps.core.audit import Actor
from apps.events import tasks as event_tasks
from apps.events.models import Event, OutboxEvent
from apps.intents.models import PaymentAttempt, PaymentIntent
from apps.intents.services import confirm, confirm_apply, confirm_plan
from apps.psp_adapters.contract import Outcome, PSPResult
from tests.factories import PaymentIntentFactory

ACTOR = Actor.system("test")
# the PSP said it processed nothing: another connector may take the payment
OUTAGE = PSPResult(
    outcome=Outcome.ERROR, raw_code="http_503", http_status=503, retryable_elsewhere=True
)

pytestmark = pytest.mark.usefixtures("connectors")


def _begin(merchant):
    """tx A of a confirm: the intent processing, attempt #1 pending on the first connector."""
    intent = PaymentIntentFactory(merchant=merchant, amount=2500)
    return confirm_plan._confirm_begin(intent=intent, actor=ACTOR, payment_method=None)


def _apply(planned, result=OUTAGE):
    """tx B with the synchronous answer `result`, as intent_confirm calls it."""
    return confirm_apply._confirm_apply(
        attempt=planned.attempt, result=result, deadline=time.monotonic() + 30, tried=planned.tried
    )


@pytest.mark.django_db(transaction=True)  # real commits: the statement runs in autocommit
def test_a_failover_writes_the_failed_attempt_its_event_and_the_next_attempt(
    pay, sim, connector_names, stripe_connector, adyen_connector, monkeypatch
):
    owed = []
    real_schedule = confirm.outbox_relay_schedule
    for module in (confirm, confirm_apply):  # the failover's caller, tx B's statement
        monkeypatch.setattr(
            module, "outbox_relay_schedule", lambda: (owed.append(1), real_schedule())
        )
    sim.faults(connector_names["stripe"], outage=True)
    body = pay(amount=3100).json()
    assert body["status"] == "succeeded"

    failed, approved = PaymentAttempt.objects.filter(intent__public_id=body["id"]).order_by(
        "sequence"
    )
    assert (failed.connector_id, failed.outcome, failed.http_status) == (
        stripe_connector.id,
        "error",
        503,
    )
    assert failed.completed_at is not None and failed.latency_ms is not None
    assert (approved.connector_id, approved.outcome, approved.sequence) == (
        adyen_connector.id,
        "approved",
        2,
    )
    assert approved.psp_idempotency_key == f"{approved.public_id}-authorize"
    assert (approved.amount, approved.currency) == (3100, "eur")
    assert approved.started_at is not None and approved.started_at >= failed.started_at
    assert approved.routing_trace["confirm_attempt"] == 2
    assert approved.routing_trace["skipped"] == {stripe_connector.public_id: "already_tried"}

    # the failed attempt's event, once, with the attempt as recorded
    rows = list(OutboxEvent.objects.filter(object_id=failed.public_id))
    assert [(r.event_type, r.sequence) for r in rows] == [("payment_attempt.error", 1)]
    assert rows[0].payload["outcome"] == "error"
    assert rows[0].payload["connector"] == stripe_connector.public_id
    # each statement (the failover's, then tx B's) left the relay to its caller, which
    # enqueued it once
    assert owed == [1, 1]
    event_tasks.relay_outbox()
    assert Event.objects.filter(type="payment_attempt.error").count() == 1
    assert not OutboxEvent.objects.filter(relayed_at__isnull=True).exists()
    connection.close()


@pytest.mark.django_db
def test_an_attempt_answered_meanwhile_is_not_failed_over(merchant):
    planned = _begin(merchant)
    # a PSP notification applied the authorization while the synchronous answer was in flight
    PaymentAttempt.objects.filter(pk=planned.attempt.pk).update(outcome="approved")

    assert _apply(planned) is None  # the caller reads the intent as the notification left it

    attempts = PaymentAttempt.objects.filter(intent_id=planned.attempt.intent_id)
    assert [(a.sequence, a.outcome) for a in attempts] == [(1, "approved")]
    assert not OutboxEvent.objects.filter(object_id=planned.attempt.public_id).exists()


@pytest.mark.django_db
def test_an_intent_no_longer_processing_this_authorization_is_not_built_on(merchant):
    planned = _begin(merchant)
    intent_id = planned.attempt.intent_id
    # a state the failover step must not build on (nothing else may set it while the attempt
    # is pending: a tampered row, say)
    PaymentIntent.objects.filter(pk=intent_id).update(next_action={"type": "redirect_to_url"})

    outcome = _apply(planned)

    # no second copy of the failover: the decline is recorded, the payment fails, and the
    # intent is left in a state the merchant can move on from
    assert isinstance(outcome, PaymentIntent)
    attempts = PaymentAttempt.objects.filter(intent_id=intent_id).order_by("sequence")
    assert [a.outcome for a in attempts] == ["error"]
    intent = PaymentIntent.objects.get(pk=intent_id)
    assert (intent.status, intent.next_action) == ("requires_payment_method", None)
    assert intent.last_payment_error["code"] == "psp_unavailable"
    assert OutboxEvent.objects.filter(object_id=planned.attempt.public_id).count() == 1
    assert OutboxEvent.objects.filter(
        object_id=intent.public_id, event_type="payment_intent.payment_failed"
    ).exists()


@pytest.mark.django_db(transaction=True)
def test_the_statement_waits_for_a_concurrent_notification_and_then_stands_back(merchant):
    planned = _begin(merchant)
    locked, finish = threading.Event(), threading.Event()

    def notification():
        try:
            with transaction.atomic():
                PaymentAttempt.objects.select_for_update().get(pk=planned.attempt.pk)
                locked.set()
                finish.wait(5)
                PaymentAttempt.objects.filter(pk=planned.attempt.pk).update(
                    outcome="approved", psp_reference="pi_from_webhook"
                )
        finally:
            connection.close()

    thread = threading.Thread(target=notification)
    thread.start()
    assert locked.wait(5)
    threading.Timer(0.3, finish.set).start()
    started = time.monotonic()
    outcome = _apply(planned)
    waited = time.monotonic() - started
    thread.join()

    assert outcome is None
    assert waited >= 0.25  # it waited for the notification's lock instead of racing it
    attempts = PaymentAttempt.objects.filter(intent_id=planned.attempt.intent_id)
    assert [(a.sequence, a.outcome, a.psp_reference) for a in attempts] == [
        (1, "approved", "pi_from_webhook")
    ]
    assert not OutboxEvent.objects.filter(object_id=planned.attempt.public_id).exists()
    connection.close()
