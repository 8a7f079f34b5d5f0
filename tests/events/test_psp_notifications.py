"""Processing PSP notifications: forward-only, stale ones recorded and ignored, early ones
retried until the synchronous answer is stored, Adyen modification results applied."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from apps.core.audit import Actor
from apps.core.models import AuditLogEntry
from apps.events import inbound
from apps.events.models import InboundWebhook, OutboxEvent
from apps.intents.models import PaymentAttempt, PaymentIntent, Refund
from apps.intents.services import confirm_apply, confirm_plan
from apps.ledger import chart
from apps.ledger import selectors as ledger_selectors
from apps.ledger.models import JournalTransaction
from apps.psp_adapters.contract import Outcome, PSPResult
from tests.events.psp_payloads import (
    adyen_item,
    adyen_request,
    stripe_event,
    stripe_pi,
    stripe_request,
)
from tests.factories import PaymentIntentFactory

ACTOR = Actor.system("tests")


def receive(client, connector, body: bytes, **headers) -> InboundWebhook:
    response = client.post(
        f"/webhooks/psp/{connector.public_id}", body, content_type="application/json", **headers
    )
    assert response.status_code == 200, response.content
    return InboundWebhook.objects.order_by("-id").first()


def process(webhook: InboundWebhook) -> InboundWebhook:
    inbound.inbound_webhook_process(webhook_id=webhook.pk)
    webhook.refresh_from_db()
    return webhook


def later(seconds: float):
    return time_machine.travel(timezone.now() + timedelta(seconds=seconds))


def begin(merchant, capture_method="automatic", amount=2000):
    """tx A of a confirm: the attempt exists, pending; the PSP has not answered yet."""
    intent = PaymentIntentFactory(merchant=merchant, capture_method=capture_method, amount=amount)
    planned = confirm_plan._confirm_begin(intent=intent, actor=ACTOR, payment_method=None)
    return intent, PaymentAttempt.objects.get(pk=planned.attempt.pk)


def answer(attempt, outcome=Outcome.APPROVED, psp_reference="pi_sync", **extra):
    """tx B: the synchronous PSP answer is stored."""
    attempt = PaymentAttempt.objects.select_related("intent__payment_method").get(pk=attempt.pk)
    confirm_apply._confirm_apply(
        attempt=attempt,
        deadline=time.monotonic() + 30,
        result=PSPResult(outcome=outcome, psp_reference=psp_reference, **extra),
        tried=frozenset({attempt.connector_id}),
    )


def events_of(intent, event_type):
    return OutboxEvent.objects.filter(object_id=intent.public_id, event_type=event_type).count()


@pytest.mark.usefixtures("stripe_connector", "enqueued")
def test_an_authorization_before_the_synchronous_answer_waits_then_applies_once(
    client, merchant, stripe_connector
):
    intent, attempt = begin(merchant)
    body, headers = stripe_request(
        stripe_event("payment_intent.succeeded", stripe_pi("pi_sync", attempt_id=attempt.public_id))
    )
    webhook = process(receive(client, stripe_connector, body, **headers))
    assert webhook.status == "retrying"
    assert webhook.outcome[-1]["result"] == "waiting"
    assert "not stored yet" in webhook.last_error
    assert PaymentIntent.objects.get(pk=intent.pk).status == "processing"  # untouched

    answer(attempt)
    with later(2):
        assert inbound.inbound_webhooks_process_due() == 1
    webhook.refresh_from_db()
    assert webhook.status == "processed"
    assert webhook.outcome[-1]["result"] == "ignored"
    intent.refresh_from_db()
    assert intent.status == "succeeded"
    assert events_of(intent, "payment_intent.succeeded") == 1


@pytest.mark.usefixtures("stripe_connector", "enqueued")
@pytest.mark.parametrize(
    "event_type, extra, status, attempt_outcome",
    [
        ("payment_intent.succeeded", {}, "succeeded", "approved"),
        (
            "payment_intent.payment_failed",
            {
                "status": "requires_payment_method",
                "last_payment_error": {
                    "code": "card_declined",
                    "decline_code": "insufficient_funds",
                },
            },
            "requires_payment_method",
            "soft_decline",
        ),
    ],
)
def test_an_unknown_outcome_is_resolved_by_the_notification(
    client, merchant, stripe_connector, event_type, extra, status, attempt_outcome
):
    intent, attempt = begin(merchant)
    answer(attempt, Outcome.UNKNOWN, psp_reference="")  # the answer was lost
    assert PaymentAttempt.objects.get(pk=attempt.pk).outcome == "unknown"
    pi = stripe_pi("pi_lost", attempt_id=attempt.public_id) | extra
    body, headers = stripe_request(stripe_event(event_type, pi))
    webhook = process(receive(client, stripe_connector, body, **headers))
    assert webhook.status == "processed"
    [result] = webhook.outcome
    assert result["result"] == "applied"
    assert {
        "object": intent.public_id,
        "field": "status",
        "from": "processing",
        "to": status,
    } in result["changes"]
    intent.refresh_from_db()
    assert intent.status == status
    assert PaymentAttempt.objects.get(pk=attempt.pk).outcome == attempt_outcome


@pytest.mark.usefixtures("adyen_connector", "enqueued")
def test_capture_and_authorization_notifications_before_the_authorization_answer(
    client, merchant, adyen_connector
):
    intent, attempt = begin(merchant)
    capture = adyen_request(
        adyen_item("CAPTURE", psp_reference="CAPREF0001", original_reference="PSPX00000001")
    )
    authorisation = adyen_request(
        adyen_item(
            "AUTHORISATION", psp_reference="PSPX00000001", merchant_reference=attempt.public_id
        )
    )
    first = process(receive(client, adyen_connector, capture))  # reordered: capture first
    second = process(receive(client, adyen_connector, authorisation))
    assert first.status == second.status == "retrying"

    answer(attempt, psp_reference="PSPX00000001")
    with later(2):
        assert inbound.inbound_webhooks_process_due() == 2
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == second.status == "processed"
    assert "already applied" in first.outcome[-1]["reason"]
    assert "already applied" in second.outcome[-1]["reason"]
    intent.refresh_from_db()
    assert intent.status == "succeeded" and intent.amount_received == 2000
    assert events_of(intent, "payment_intent.succeeded") == 1


@pytest.mark.usefixtures("adyen_connector", "enqueued")
def test_an_adyen_capture_confirmed_before_its_received_answer_completes_the_capture(
    client, merchant, adyen_connector
):
    intent, attempt = begin(merchant, capture_method="manual")
    answer(attempt, psp_reference="PSPX00000002")
    # tx A of intent_capture: capture requested, the "received" answer not applied yet
    PaymentIntent.objects.filter(pk=intent.pk).update(
        status="processing", pending_operation="capture"
    )
    body = adyen_request(
        adyen_item(
            "CAPTURE", psp_reference="CAPREF0002", original_reference="PSPX00000002", amount=1500
        )
    )
    webhook = process(receive(client, adyen_connector, body))
    assert webhook.status == "processed" and webhook.outcome[-1]["result"] == "applied"
    intent.refresh_from_db()
    assert intent.status == "succeeded"
    assert (intent.amount_received, intent.amount_capturable) == (1500, 0)
    assert intent.pending_operation == ""
    assert events_of(intent, "payment_intent.succeeded") == 1


@pytest.mark.usefixtures("adyen_connector", "enqueued")
def test_adyen_capture_failed_after_the_optimistic_capture_reverts_it(
    client, api, pay, adyen_connector
):
    created = pay(capture_method="manual").json()
    captured = api.post(f"/v1/payment_intents/{created['id']}/capture", {}, format="json")
    assert captured.json()["status"] == "succeeded"  # Adyen said "received": optimistic
    body = adyen_request(
        adyen_item(
            "CAPTURE_FAILED",
            psp_reference="CAPREF0003",
            original_reference=created["psp_reference"],
            reason="Capture refused by the issuer",
        )
    )
    webhook = process(receive(client, adyen_connector, body))
    assert webhook.status == "processed"
    assert webhook.outcome[-1]["result"] == "applied"
    intent = PaymentIntent.objects.get(public_id=created["id"])
    assert intent.status == "requires_capture"
    assert (intent.amount_received, intent.amount_capturable) == (0, 2000)
    event = OutboxEvent.objects.filter(object_id=intent.public_id).order_by("sequence").last()
    assert event.event_type == "payment_intent.capture_failed"
    assert event.previous_attributes["status"] == "succeeded"
    assert event.payload["status"] == "requires_capture"
    assert AuditLogEntry.objects.filter(
        action="payment_intent.capture_reverted", object_id=intent.public_id
    ).exists()
    # the books no longer count money that never came, and the authorization is held again
    assert (
        ledger_selectors.account_balance(
            merchant_id=intent.merchant_id,
            livemode=False,
            currency="eur",
            code=chart.MERCHANT_PENDING,
        )
        == 0
    )
    assert (
        ledger_selectors.hold_status(
            hold=JournalTransaction.objects.get(public_id=intent.ledger_hold)
        )
        == "pending"
    )
    # the authorization still stands: the merchant may cancel it
    canceled = api.post(f"/v1/payment_intents/{created['id']}/cancel", {}, format="json")
    assert canceled.status_code == 200, canceled.content
    assert canceled.json()["status"] == "canceled"
    assert (
        ledger_selectors.hold_status(
            hold=JournalTransaction.objects.get(public_id=intent.ledger_hold)
        )
        == "voided"
    )


@pytest.mark.usefixtures("adyen_connector", "enqueued")
def test_a_capture_failure_after_refunds_is_flagged_not_reverted(client, api, pay, adyen_connector):
    created = pay().json()
    api.post("/v1/refunds", {"payment_intent": created["id"], "amount": 500}, format="json")
    body = adyen_request(
        adyen_item(
            "CAPTURE",
            psp_reference="CAPREF0004",
            success=False,
            original_reference=created["psp_reference"],
        )
    )
    webhook = process(receive(client, adyen_connector, body))
    assert webhook.outcome[-1]["result"] == "conflict"
    intent = PaymentIntent.objects.get(public_id=created["id"])
    assert intent.status == "succeeded" and intent.needs_review is True


@pytest.mark.usefixtures("adyen_connector", "enqueued")
def test_adyen_refund_results_succeed_or_fail_the_pending_refund(client, api, pay, adyen_connector):
    created = pay(amount=3000).json()
    first = api.post(
        "/v1/refunds", {"payment_intent": created["id"], "amount": 1000}, format="json"
    ).json()
    second = api.post(
        "/v1/refunds", {"payment_intent": created["id"], "amount": 500}, format="json"
    ).json()
    assert first["status"] == second["status"] == "pending"  # Adyen answers "received"
    ok = adyen_request(
        adyen_item(
            "REFUND",
            psp_reference="REF0000000001",
            amount=1000,
            merchant_reference=first["id"],
            original_reference=created["psp_reference"],
        )
    )
    failed = adyen_request(
        adyen_item(
            "REFUND",
            psp_reference="REF0000000002",
            amount=500,
            success=False,
            reason="Insufficient balance",
            merchant_reference=second["id"],
            original_reference=created["psp_reference"],
        )
    )
    assert process(receive(client, adyen_connector, ok)).status == "processed"
    assert process(receive(client, adyen_connector, failed)).status == "processed"
    assert Refund.objects.get(public_id=first["id"]).status == "succeeded"
    refund = Refund.objects.get(public_id=second["id"])
    assert refund.status == "failed" and refund.failure_reason == "REFUND"
    intent = PaymentIntent.objects.get(public_id=created["id"])
    assert intent.amount_refunded == 1000  # the failed refund's reservation is released
    assert (
        OutboxEvent.objects.filter(object_id=first["id"], event_type="refund.succeeded").count()
        == 1
    )
    assert (
        OutboxEvent.objects.filter(object_id=second["id"], event_type="refund.failed").count() == 1
    )


@pytest.mark.usefixtures("adyen_connector", "enqueued")
def test_adyen_cancellation_results_complete_or_fail_the_pending_cancel(
    client, api, pay, adyen_connector
):
    created = pay(capture_method="manual").json()
    intent = PaymentIntent.objects.get(public_id=created["id"])
    PaymentIntent.objects.filter(pk=intent.pk).update(pending_operation="cancel")
    refused = adyen_request(
        adyen_item(
            "CANCELLATION",
            psp_reference="CAN0000000001",
            success=False,
            original_reference=intent.psp_reference,
        )
    )
    assert process(receive(client, adyen_connector, refused)).outcome[-1]["result"] == "applied"
    intent.refresh_from_db()
    assert (intent.status, intent.pending_operation) == ("requires_capture", "")

    PaymentIntent.objects.filter(pk=intent.pk).update(pending_operation="cancel")
    confirmed = adyen_request(
        adyen_item(
            "CANCELLATION", psp_reference="CAN0000000002", original_reference=intent.psp_reference
        )
    )
    process(receive(client, adyen_connector, confirmed))
    intent.refresh_from_db()
    assert intent.status == "canceled"
    assert events_of(intent, "payment_intent.canceled") == 1


@pytest.mark.usefixtures("connectors", "enqueued")
def test_stale_and_repeated_notifications_are_recorded_and_ignored(
    client, api, pay, stripe_connector
):
    created = pay().json()
    intent = PaymentIntent.objects.get(public_id=created["id"])
    attempt = intent.attempts.get()
    rows_before = OutboxEvent.objects.count()
    pi = stripe_pi(
        created["psp_reference"],
        attempt_id=attempt.public_id,
        status="requires_payment_method",
        last_payment_error={"code": "card_declined", "decline_code": "do_not_honor"},
    )
    body, headers = stripe_request(stripe_event("payment_intent.payment_failed", pi))
    webhook = process(receive(client, stripe_connector, body, **headers))
    assert webhook.status == "processed"
    assert webhook.outcome[-1]["result"] == "ignored"
    assert webhook.outcome[-1]["reason"].startswith("stale")
    body, headers = stripe_request(
        stripe_event(
            "payment_intent.succeeded",
            stripe_pi(created["psp_reference"], attempt_id=attempt.public_id),
        )
    )
    late = process(receive(client, stripe_connector, body, **headers))
    assert late.outcome[-1]["reason"] == "already applied: the attempt is approved"
    inbound.inbound_webhook_reprocess(webhook=late, actor=ACTOR)  # ops run it again
    late.refresh_from_db()
    assert [o["result"] for o in late.outcome] == ["ignored", "ignored"]
    intent.refresh_from_db()
    assert intent.status == "succeeded"
    assert OutboxEvent.objects.count() == rows_before  # nothing changed, nothing emitted


@pytest.mark.usefixtures("stripe_connector", "enqueued")
def test_authorized_at_the_psp_after_a_recorded_decline_is_a_conflict_for_ops(
    client, merchant, stripe_connector
):
    intent, attempt = begin(merchant)
    answer(attempt, Outcome.HARD_DECLINE, decline_code="stolen_card")
    body, headers = stripe_request(
        stripe_event("payment_intent.succeeded", stripe_pi("pi_sync", attempt_id=attempt.public_id))
    )
    webhook = process(receive(client, stripe_connector, body, **headers))
    assert webhook.outcome[-1]["result"] == "conflict"
    intent.refresh_from_db()
    assert intent.status == "requires_payment_method" and intent.needs_review is True


@pytest.mark.usefixtures("stripe_connector", "enqueued")
def test_waiting_is_bounded_then_dead_lettered_and_reprocessable(
    client, merchant, stripe_connector, settings
):
    settings.PSP_WEBHOOK_RETRY_SECONDS = [1, 1]
    _intent, attempt = begin(merchant)
    body, headers = stripe_request(
        stripe_event("payment_intent.succeeded", stripe_pi("pi_sync", attempt_id=attempt.public_id))
    )
    webhook = process(receive(client, stripe_connector, body, **headers))
    for seconds in (2, 4):
        with later(seconds):
            inbound.inbound_webhooks_process_due()
    webhook.refresh_from_db()
    assert webhook.status == "dead" and webhook.attempts == 3
    with later(10):
        assert inbound.inbound_webhooks_process_due() == 0  # dead letters stay put

    answer(attempt)
    inbound.inbound_webhook_reprocess(webhook=webhook, actor=ACTOR)
    webhook.refresh_from_db()
    assert webhook.status == "processed"
    assert AuditLogEntry.objects.filter(action="psp_webhook.reprocessed").count() == 1


@pytest.mark.usefixtures("stripe_connector", "enqueued")
def test_processing_failures_are_retried_then_dead_lettered(
    client, stripe_connector, settings, monkeypatch
):
    settings.PSP_WEBHOOK_RETRY_SECONDS = [1]

    def broken(**kwargs):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(inbound, "notification_dispatch", broken)
    body, headers = stripe_request(
        stripe_event("payment_intent.succeeded", stripe_pi("pi_x", attempt_id="pa_x"))
    )
    webhook = process(receive(client, stripe_connector, body, **headers))
    assert webhook.status == "retrying"
    with later(2):
        inbound.inbound_webhooks_process_due()
    webhook.refresh_from_db()
    assert webhook.status == "dead"
    assert webhook.last_error == "RuntimeError: database hiccup"


@pytest.mark.usefixtures("stripe_connector", "enqueued")
def test_payout_notifications_are_recorded_only(client, stripe_connector):
    body, headers = stripe_request(
        stripe_event(
            "payout.paid",
            {"id": "po_1", "object": "payout", "amount": 100, "currency": "eur", "status": "paid"},
        )
    )
    webhook = process(receive(client, stripe_connector, body, **headers))
    assert webhook.status == "processed"
    assert webhook.outcome[-1]["result"] == "ignored"


@pytest.mark.usefixtures("stripe_connector", "enqueued")
def test_a_notification_whose_worker_died_mid_way_is_processed_after_a_short_lease(
    client, merchant, stripe_connector
):
    """A worker that claimed a notification and then lost its database (a PostgreSQL restart)
    or died leaves the claim behind: the sweep takes it over once the lease has run out,
    which is half a minute, not the minutes during which the merchant's events would wait."""
    intent, attempt = begin(merchant)
    answer(attempt, Outcome.UNKNOWN, psp_reference="")
    body, headers = stripe_request(
        stripe_event("payment_intent.succeeded", stripe_pi("pi_late", attempt_id=attempt.public_id))
    )
    with time_machine.travel(timezone.now(), tick=False):
        webhook = receive(client, stripe_connector, body, **headers)
        assert inbound._claim(webhook.pk)  # ... and the worker is gone
        with later(15):
            assert inbound.inbound_webhooks_process_due() == 0  # still its claim
        with later(31):
            assert inbound.inbound_webhooks_process_due() == 1
    webhook.refresh_from_db()
    assert webhook.status == "processed" and webhook.attempts == 2
    intent.refresh_from_db()
    assert intent.status == "succeeded"
    assert events_of(intent, "payment_intent.succeeded") == 1
