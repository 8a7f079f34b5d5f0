"""POST /webhooks/psp/{connector_id}: stored raw first, verified by the connector's adapter,
de-duplicated on (connector, PSP event id), acknowledged fast, processed in Celery."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from apps.events import selectors, tasks
from apps.events.models import InboundWebhook
from apps.intents.models import PaymentIntent
from tests.events.psp_payloads import (
    adyen_item,
    adyen_request,
    stripe_event,
    stripe_pi,
    stripe_request,
)
from tests.factories import ConnectorFactory


def post(client, connector, body: bytes, **headers):
    return client.post(
        f"/webhooks/psp/{connector.public_id}", body, content_type="application/json", **headers
    )


def test_a_verified_stripe_webhook_is_stored_raw_and_acknowledged(
    client, stripe_connector, enqueued
):
    body, headers = stripe_request(
        stripe_event(
            "payment_intent.succeeded", stripe_pi("pi_1", attempt_id="pa_1"), event_id="evt_one"
        )
    )
    response = post(client, stripe_connector, body, **headers)
    assert response.status_code == 200, response.content
    assert response.json()["received"] is True and response.json()["duplicate"] is False
    webhook = InboundWebhook.objects.get()
    assert bytes(webhook.body) == body
    assert webhook.psp_event_id == "evt_one"
    assert webhook.verification == "verified" and webhook.status == "pending"
    assert webhook.event_types == ["authorization"]
    assert webhook.headers["stripe-signature"] == headers["HTTP_STRIPE_SIGNATURE"]
    assert webhook.merchant_id == stripe_connector.merchant_id
    assert enqueued == [webhook.pk]


def test_a_verified_adyen_notification_is_accepted_the_adyen_way(client, adyen_connector, enqueued):
    body = adyen_request(
        adyen_item("AUTHORISATION", psp_reference="PSP1", merchant_reference="pa_1")
    )
    response = post(client, adyen_connector, body)
    assert response.status_code == 200
    assert response.content == b"[accepted]"
    assert InboundWebhook.objects.get().psp_event_id == "PSP1:AUTHORISATION:true"


def test_a_duplicate_is_acknowledged_and_ignored(client, stripe_connector, enqueued):
    event = stripe_event("payment_intent.succeeded", stripe_pi("pi_1", attempt_id="pa_1"))
    body, headers = stripe_request(event)
    first = post(client, stripe_connector, body, **headers)
    body, headers = stripe_request(event)  # a PSP retry: freshly signed, same event id
    again = post(client, stripe_connector, body, **headers)
    assert first.status_code == again.status_code == 200
    assert again.json()["duplicate"] is True
    original, duplicate = InboundWebhook.objects.order_by("id")
    assert original.status == "pending"
    assert duplicate.status == "duplicate" and duplicate.duplicate_of == original
    assert enqueued == [original.pk]  # processed once


def test_the_same_event_id_on_another_connector_is_not_a_duplicate(
    client, stripe_connector, adyen_connector, enqueued, merchant, simulator_url
):
    second = ConnectorFactory(
        merchant=merchant, name="stripe-two", simulator_account="two", supported_currencies=["eur"]
    )
    event = stripe_event("payment_intent.succeeded", stripe_pi("pi_1", attempt_id="pa_1"))
    for connector in (stripe_connector, second):
        body, headers = stripe_request(event)
        assert post(client, connector, body, **headers).json()["duplicate"] is False
    assert len(enqueued) == 2


@pytest.mark.parametrize(
    "mangle, reason",
    [
        (lambda h: {}, "missing Stripe-Signature"),
        (
            lambda h: {"HTTP_STRIPE_SIGNATURE": h["HTTP_STRIPE_SIGNATURE"].replace("v1=", "v1=0")},
            "does not match",
        ),
        (lambda h: {"HTTP_STRIPE_SIGNATURE": "garbage"}, "malformed"),
    ],
)
def test_a_bad_stripe_signature_is_a_400_logged_counted_and_changes_nothing(
    client, stripe_connector, enqueued, caplog, mangle, reason
):
    event = stripe_event("payment_intent.succeeded", stripe_pi("pi_1", attempt_id="pa_1"))
    body, headers = stripe_request(event)
    with caplog.at_level(logging.WARNING, logger="apps.events.inbound"):
        response = post(client, stripe_connector, body, **mangle(headers))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "webhook_signature_invalid" and reason in error["message"]
    webhook = InboundWebhook.objects.get()
    assert webhook.status == "rejected" and webhook.verification == "failed"
    assert not hasattr(webhook, "dedup_claim")
    assert enqueued == []
    assert any("rejected" in message for message in caplog.messages)
    assert (
        selectors.inbound_rejections(
            connector_id=stripe_connector.pk, since=timezone.now() - timedelta(minutes=1)
        )
        == 1
    )


def test_a_stripe_signature_outside_the_tolerance_is_refused(client, stripe_connector, enqueued):
    event = stripe_event("payment_intent.succeeded", stripe_pi("pi_1", attempt_id="pa_1"))
    body, headers = stripe_request(event, timestamp=int(time.time()) - 3600)
    response = post(client, stripe_connector, body, **headers)
    assert response.status_code == 400
    assert "tolerance" in response.json()["error"]["message"]


def test_a_bad_adyen_hmac_is_refused(client, adyen_connector, enqueued):
    body = adyen_request(adyen_item("AUTHORISATION", psp_reference="PSP1"), key="00" * 32)
    response = post(client, adyen_connector, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "webhook_signature_invalid"
    assert InboundWebhook.objects.get().verification == "failed"


def test_a_signed_but_tampered_adyen_body_is_refused(client, adyen_connector, enqueued):
    body = adyen_request(adyen_item("CAPTURE", psp_reference="PSP2", original_reference="PSP1"))
    tampered = body.replace(b'"value": 2000', b'"value": 1')
    assert post(client, adyen_connector, tampered).status_code == 400


def test_an_unknown_connector_is_a_404_envelope_and_nothing_is_stored(client, db, enqueued):
    body, headers = stripe_request(stripe_event("payment_intent.succeeded", {"id": "pi_1"}))
    response = client.post(
        "/webhooks/psp/mca_doesnotexist", body, content_type="application/json", **headers
    )
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "resource_missing" and error["param"] == "connector_id"
    assert error["request_id"] == response["Request-Id"]
    assert InboundWebhook.objects.count() == 0


def test_a_body_that_is_not_json_is_a_clear_400(client, stripe_connector, enqueued):
    body = b"<xml>not json</xml>"
    _, headers = stripe_request({"id": "x"})
    response = post(client, stripe_connector, body, **headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "webhook_payload_invalid"
    assert InboundWebhook.objects.get().status == "rejected"
    assert enqueued == []


@pytest.mark.parametrize(
    "event",
    [
        {"object": "event", "type": "payment_intent.succeeded", "data": {"object": {}}},  # no id
        {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {}}},  # no payment
        ["a", "list"],
    ],
)
def test_a_stripe_body_missing_fields_is_a_clear_400(client, stripe_connector, enqueued, event):
    body = json.dumps(event).encode()
    from apps.psp_simulator.signing import stripe_signature_header
    from tests.events.psp_payloads import STRIPE_SECRET

    header = stripe_signature_header(body, STRIPE_SECRET, int(time.time()))
    response = post(client, stripe_connector, body, HTTP_STRIPE_SIGNATURE=header)
    assert response.status_code == 400
    assert response.json()["error"]["code"] in (
        "webhook_payload_invalid",
        "webhook_signature_invalid",
    )
    assert InboundWebhook.objects.get().status == "rejected"
    assert enqueued == []


def test_an_adyen_item_without_psp_reference_is_refused(client, adyen_connector, enqueued):
    item = adyen_item("AUTHORISATION", psp_reference="")
    response = post(client, adyen_connector, adyen_request(item))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "webhook_payload_invalid"


def test_an_oversized_body_is_refused_before_anything_is_stored(
    client, stripe_connector, enqueued, settings
):
    settings.PSP_WEBHOOK_MAX_BODY_BYTES = 1000
    event = stripe_event(
        "payment_intent.succeeded", stripe_pi("pi_1", attempt_id="pa_1", description="x" * 2000)
    )
    body, headers = stripe_request(event)
    response = post(client, stripe_connector, body, **headers)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    huge = post(client, stripe_connector, b"{" + b" " * (2 * 1024 * 1024) + b"}", **headers)
    assert huge.status_code == 413
    assert InboundWebhook.objects.count() == 0


def test_only_post(client, stripe_connector):
    response = client.get(f"/webhooks/psp/{stripe_connector.public_id}")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.usefixtures("connectors")
def test_broker_down_the_row_waits_and_the_sweep_processes_it(
    client, api, pay, stripe_connector, monkeypatch
):
    intent = pay(capture_method="manual").json()
    attempt_id = PaymentIntent.objects.get(public_id=intent["id"]).attempts.get().public_id

    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("redis is down")

    monkeypatch.setattr(tasks.process_psp_webhook, "apply_async", broker_down)
    event = stripe_event(
        "payment_intent.canceled",
        stripe_pi(intent["psp_reference"], attempt_id=attempt_id, status="canceled"),
    )
    body, headers = stripe_request(event)
    response = post(client, stripe_connector, body, **headers)
    assert response.status_code == 200  # the PSP is told we have it: it is stored
    webhook = InboundWebhook.objects.get()
    assert webhook.status == "pending"
    assert tasks.process_due_psp_webhooks() == 0  # the normal path still has its grace period

    monkeypatch.undo()  # broker back
    with time_machine.travel(timezone.now() + timedelta(seconds=11)):
        assert tasks.process_due_psp_webhooks() == 1  # what beat runs
    webhook.refresh_from_db()
    assert webhook.status == "processed"
    assert PaymentIntent.objects.get(public_id=intent["id"]).status == "canceled"


def test_a_crash_while_verifying_keeps_the_raw_row_for_the_sweep(
    client, stripe_connector, enqueued, monkeypatch
):
    def broken_verify(self, headers, body):
        raise RuntimeError("adapter bug")

    monkeypatch.setattr("apps.connectors.gateway.NotificationReader.verify", broken_verify)
    client.raise_request_exception = False
    event = stripe_event("payout.paid", {"id": "po_1", "object": "payout"})
    body, headers = stripe_request(event)
    response = post(client, stripe_connector, body, **headers)
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "api_error"
    webhook = InboundWebhook.objects.get()
    assert webhook.status == "received" and bytes(webhook.body) == body

    monkeypatch.undo()  # fixed and deployed
    with time_machine.travel(timezone.now() + timedelta(seconds=11)):
        tasks.process_due_psp_webhooks()
    webhook.refresh_from_db()
    assert webhook.verification == "verified" and webhook.status == "processed"


@pytest.mark.django_db(transaction=True)
def test_concurrent_twins_are_one_notification_and_one_duplicate(stripe_connector, enqueued):
    import threading

    from django.db import connection
    from django.test import Client

    event = stripe_event("payment_intent.succeeded", stripe_pi("pi_1", attempt_id="pa_1"))
    body, headers = stripe_request(event)
    barrier, statuses = threading.Barrier(4), []

    def send():
        try:
            barrier.wait()
            statuses.append(post(Client(), stripe_connector, body, **headers).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 4
    assert sorted(InboundWebhook.objects.values_list("status", flat=True)) == [
        "duplicate",
        "duplicate",
        "duplicate",
        "pending",
    ]
    assert len(enqueued) == 1
