"""A capture or a cancel that the PSP refuses, does not answer, or never hears of leaves the
intent in a state the API (or the admin) can move on from; one that is in flight refuses every
other operation; a process that dies mid-operation is resolved by the stalled-operation sweep,
with the same idempotency key, so nothing happens twice at the PSP."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.core.audit import Actor
from apps.events.models import OutboxEvent
from apps.intents import services
from apps.intents.models import PaymentAttempt, PaymentIntent
from apps.intents.services import confirm, operations
from apps.ledger import selectors as ledger_selectors

CAPTURE_FAILS = "4000009900000053"  # authorises; the capture is refused (Stripe: auth expired)


@pytest.fixture
def connector_of(request):
    def make(dialect: str):
        return request.getfixturevalue(f"{dialect}_connector")

    return make


def _authorized(pay, number="4242424242424242", amount=5000) -> str:
    body = pay(number=number, amount=amount, capture_method="manual").json()
    assert body["status"] == "requires_capture", body
    return body["id"]


def _events(intent_id: str, event_type: str) -> int:
    return OutboxEvent.objects.filter(object_id=intent_id, event_type=event_type).count()


def _journal_kinds(intent_id: str) -> list[str]:
    return [j.kind for j in ledger_selectors.journals_for_source(source_id=intent_id)]


def _books_balance() -> None:
    for trial in ledger_selectors.trial_balance():
        assert trial.total_debit == trial.total_credit
        assert trial.pending_debits == trial.pending_credits


def test_a_capture_refused_because_the_authorization_expired_cancels_the_payment(
    api, pay, stripe_connector
):
    intent_id = _authorized(pay, CAPTURE_FAILS)

    response = api.post(f"/v1/payment_intents/{intent_id}/capture", {}, format="json")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "capture_failed" and error["payment_intent_status"] == "canceled"
    intent = PaymentIntent.objects.get(public_id=intent_id)
    # the database says what the PSP says: voided, nothing capturable, nothing in flight
    assert (intent.status, intent.pending_operation, intent.amount_capturable) == (
        "canceled",
        "",
        0,
    )
    assert intent.cancellation_reason == "automatic"
    assert _events(intent_id, "payment_intent.canceled") == 1
    assert _journal_kinds(intent_id) == ["authorization_hold", "void"]  # the hold is released
    _books_balance()


@pytest.mark.parametrize("dialect", ["stripe", "adyen"])
def test_a_capture_the_psp_did_not_process_can_be_captured_again(
    api, pay, sim, connector_names, dialect, connector_of
):
    connector_of(dialect)
    name = connector_names[dialect]
    intent_id = _authorized(pay)
    sim.faults(name, error_503_rate=1.0, operations=["capture"])

    response = api.post(f"/v1/payment_intents/{intent_id}/capture", {}, format="json")

    assert response.status_code == 409, response.content
    assert response.json()["error"]["code"] == "capture_failed"
    intent = PaymentIntent.objects.get(public_id=intent_id)
    assert (intent.status, intent.pending_operation) == ("requires_capture", "")
    assert intent.pending_check_at is None
    assert _events(intent_id, "payment_intent.capture_failed") == 1

    # nothing is wedged: the merchant captures again once the PSP is back
    sim.faults(name)
    again = api.post(f"/v1/payment_intents/{intent_id}/capture", {}, format="json")
    assert again.status_code == 200 and again.json()["status"] == "succeeded"
    assert [c["amount_captured"] for c in sim.charges(name)] == [5000]
    _books_balance()


@pytest.mark.parametrize("dialect", ["stripe", "adyen"])
def test_a_lost_capture_answer_is_resolved_by_the_sweep_with_the_same_key(
    api, pay, sim, connector_names, dialect, connector_of
):
    connector_of(dialect)
    name = connector_names[dialect]
    intent_id = _authorized(pay)
    sim.faults(name, response_lost_rate=1.0, response_lost_delay_s=3, operations=["capture"])

    response = api.post(
        f"/v1/payment_intents/{intent_id}/capture", {"amount_to_capture": 3000}, format="json"
    )

    assert response.status_code == 200 and response.json()["status"] == "processing"
    intent = PaymentIntent.objects.get(public_id=intent_id)
    assert intent.pending_operation == "capture" and intent.pending_amount == 3000
    # another operation meanwhile is refused, not raced
    refused = api.post(f"/v1/payment_intents/{intent_id}/cancel", {}, format="json")
    assert refused.status_code == 409

    sim.faults(name)
    PaymentIntent.objects.filter(pk=intent.pk).update(pending_check_at=timezone.now())
    services.intents_resolve_stalled_operations()

    intent.refresh_from_db()
    assert (intent.status, intent.amount_received, intent.pending_operation) == (
        "succeeded",
        3000,
        "",
    )
    assert [c["amount_captured"] for c in sim.charges(name)] == [3000]  # captured once
    assert _events(intent_id, "payment_intent.succeeded") == 1
    _books_balance()


def test_a_capture_whose_process_died_is_finished_by_the_sweep(
    api, pay, sim, connector_names, stripe_connector, monkeypatch
):
    intent_id = _authorized(pay)

    def killed(**kwargs):
        raise SystemExit("worker killed between the PSP's answer and tx B")

    monkeypatch.setattr(operations, "_capture_apply", killed)
    with pytest.raises(SystemExit):
        services.intent_capture(
            intent=PaymentIntent.objects.get(public_id=intent_id),
            actor=Actor.system("tests"),
        )
    monkeypatch.undo()
    intent = PaymentIntent.objects.get(public_id=intent_id)
    assert (intent.status, intent.pending_operation) == ("processing", "capture")
    # not due yet: a live request may still be on its way
    assert services.intents_resolve_stalled_operations() == 0

    PaymentIntent.objects.filter(pk=intent.pk).update(
        pending_check_at=timezone.now() - timedelta(seconds=1)
    )
    services.intents_resolve_stalled_operations()

    intent.refresh_from_db()
    assert intent.status == "succeeded" and intent.amount_received == 5000
    assert [c["amount_captured"] for c in sim.charges(connector_names["stripe"])] == [5000]


def test_a_cancel_whose_answer_was_lost_is_confirmed_by_the_sweep(
    api, pay, sim, connector_names, stripe_connector
):
    name = connector_names["stripe"]
    intent_id = _authorized(pay)
    sim.faults(name, response_lost_rate=1.0, response_lost_delay_s=3, operations=["cancel"])

    response = api.post(f"/v1/payment_intents/{intent_id}/cancel", {}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "cancel_pending"
    assert api.post(f"/v1/payment_intents/{intent_id}/capture", {}, format="json").json()["error"][
        "code"
    ] == ("payment_intent_operation_in_progress")
    sim.faults(name)
    PaymentIntent.objects.filter(public_id=intent_id).update(pending_check_at=timezone.now())
    services.intents_resolve_stalled_operations()

    intent = PaymentIntent.objects.get(public_id=intent_id)
    assert (intent.status, intent.pending_operation) == ("canceled", "")
    assert [c["status"] for c in sim.charges(name)] == ["canceled"]
    assert _journal_kinds(intent_id) == ["authorization_hold", "void"]


def test_an_authorization_without_a_recorded_answer_is_inquired(
    pay, sim, connector_names, stripe_connector, monkeypatch, settings
):
    # the process died after the PSP charged and before tx B: the attempt stays pending
    def killed(**kwargs):
        raise SystemExit("worker killed")

    monkeypatch.setattr(confirm, "_confirm_apply", killed)
    with pytest.raises(SystemExit):
        pay(amount=5100)
    monkeypatch.undo()
    attempt = PaymentAttempt.objects.get(amount=5100)
    assert attempt.outcome == "pending" and attempt.intent.status == "processing"

    assert services.intents_resolve_stalled_operations() == 0  # too recent to be orphaned
    # judged by its connector's own timeouts (2 s connect + 1.5 s read) plus the 30 s grace
    due = timedelta(seconds=2 + 1.5 + settings.PENDING_OPERATION_GRACE_SECONDS)
    started = attempt.started_at
    PaymentAttempt.objects.filter(pk=attempt.pk).update(
        started_at=timezone.now() - due + timedelta(seconds=2)
    )
    assert services.intents_resolve_stalled_operations() == 0  # its PSP call may still answer
    PaymentAttempt.objects.filter(pk=attempt.pk).update(started_at=started - due)
    assert services.intents_resolve_stalled_operations() == 1
    services.attempts_inquire_due()

    attempt.refresh_from_db()
    intent = PaymentIntent.objects.get(pk=attempt.intent_id)
    assert attempt.outcome == "approved" and intent.status == "succeeded"
    assert len(sim.charges(connector_names["stripe"])) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_capture_and_cancels_never_both_reach_the_psp(
    api, pay, sim, connector_names, stripe_connector
):
    name = connector_names["stripe"]
    intent_id = _authorized(pay)
    sim.faults(name, latency_ms=800, operations=["cancel", "capture"])
    answers = {}

    def cancel_first():
        answers["first"] = api.post(f"/v1/payment_intents/{intent_id}/cancel", {}, format="json")
        connection.close()

    worker = threading.Thread(target=cancel_first)
    worker.start()
    deadline = time.monotonic() + 5
    while PaymentIntent.objects.get(public_id=intent_id).pending_operation != "cancel":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    capture = api.post(f"/v1/payment_intents/{intent_id}/capture", {}, format="json")
    second_cancel = api.post(f"/v1/payment_intents/{intent_id}/cancel", {}, format="json")
    worker.join()

    assert capture.status_code == 409
    assert capture.json()["error"]["code"] == "payment_intent_operation_in_progress"
    assert second_cancel.status_code == 409
    assert answers["first"].status_code == 200 and answers["first"].json()["status"] == "canceled"
    intent = PaymentIntent.objects.get(public_id=intent_id)
    assert (intent.status, intent.pending_operation) == ("canceled", "")
    charge = sim.charges(name)[0]
    assert (charge["status"], charge["amount_captured"]) == ("canceled", 0)
    connection.close()
