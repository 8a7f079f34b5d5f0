"""Merchant webhooks: Standard Webhooks signatures, the retry schedule (time frozen),
dead-lettering, replay, disabling endpoints that fail for days, live-mode URL checks."""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from standardwebhooks import Webhook

from apps.events import relay, services, tasks, url_safety
from apps.events.models import (
    Event,
    OutboxEvent,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
)
from apps.events.services import outbox_record
from tests.factories import WebhookEndpointFactory
from tests.support.webhook_receiver import WebhookReceiver

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def record(merchant, object_id="pi_1", event_type="payment_intent.succeeded", livemode=False):
    return outbox_record(
        merchant_id=merchant.id,
        livemode=livemode,
        object_type=event_type.split(".")[0],
        object_id=object_id,
        event_type=event_type,
        payload={"id": object_id, "object": event_type.split(".")[0], "status": "succeeded"},
    )


def one_delivery(merchant, **kwargs) -> WebhookDelivery:
    record(merchant, **kwargs)
    relay.outbox_relay()
    return WebhookDelivery.objects.get()


@pytest.fixture
def inline_tasks(monkeypatch):
    """Celery tasks enqueued on commit run synchronously (commit: the capture block's end)."""
    monkeypatch.setattr(
        tasks.deliver_webhooks, "apply_async", lambda args, **kwargs: tasks.deliver_webhooks(*args)
    )


def test_a_receiver_failing_twice_gets_the_event_when_the_schedule_says(
    merchant, receiver, endpoint, settings
):
    settings.WEBHOOK_RETRY_SCHEDULE_SECONDS = [10, 60, 300]
    settings.WEBHOOK_RETRY_JITTER = 0.1
    receiver.fail_next = 2
    with time_machine.travel(T0, tick=False) as clock:
        delivery = one_delivery(merchant)
        assert services.webhook_deliveries_deliver(delivery_ids=[delivery.pk]) == 1
        delivery.refresh_from_db()
        assert delivery.status == "pending" and delivery.attempt_count == 1
        first_retry = delivery.next_attempt_at
        assert T0 + timedelta(seconds=9) <= first_retry <= T0 + timedelta(seconds=11)

        clock.move_to(first_retry - timedelta(seconds=1))
        assert services.webhook_deliveries_deliver_due() == 0  # not due yet: nothing sent
        clock.move_to(first_retry)
        assert services.webhook_deliveries_deliver_due() == 1  # fails again
        delivery.refresh_from_db()
        second_retry = delivery.next_attempt_at
        assert (
            first_retry + timedelta(seconds=54)
            <= second_retry
            <= first_retry + timedelta(seconds=66)
        )
        assert receiver.received == []

        clock.move_to(second_retry - timedelta(seconds=1))
        assert services.webhook_deliveries_deliver_due() == 0
        clock.move_to(second_retry)
        assert services.webhook_deliveries_deliver_due() == 1
        [webhook] = receiver.received
        # verified with the Standard Webhooks library, at the time it was received
        payload = Webhook(endpoint.secret).verify(webhook.body, webhook.headers)

    event = Event.objects.get()
    assert webhook.headers["webhook-id"] == event.public_id
    assert webhook.headers["webhook-timestamp"] == str(int(second_retry.timestamp()))
    assert payload["id"] == event.public_id
    assert payload["type"] == "payment_intent.succeeded"
    assert payload["data"]["object"]["id"] == "pi_1"
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.attempt_count == 3
    attempts = list(WebhookDeliveryAttempt.objects.filter(delivery=delivery))
    assert [a.status_code for a in attempts] == [500, 500, 200]
    assert [a.succeeded for a in attempts] == [False, False, True]
    assert [a.started_at for a in attempts] == [T0, first_retry, second_retry]
    assert all(a.response_body == "[accepted]" and a.latency_ms >= 0 for a in attempts)
    endpoint.endpoint.refresh_from_db()
    assert endpoint.endpoint.failing_since is None


def test_a_wrong_secret_does_not_verify(merchant, receiver, endpoint):
    delivery = one_delivery(merchant)
    services.webhook_deliveries_deliver(delivery_ids=[delivery.pk])
    [webhook] = receiver.received
    from standardwebhooks.webhooks import WebhookVerificationError

    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(webhook.body, webhook.headers)
    tampered = webhook.body.replace(b"succeeded", b"canceled")
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint.secret).verify(tampered, webhook.headers)


def test_after_a_roll_both_secrets_verify_until_the_old_one_expires(
    merchant, receiver, endpoint, system_actor
):
    with time_machine.travel(T0, tick=False) as clock:
        rolled = services.webhook_endpoint_roll_secret(
            endpoint=endpoint.endpoint, actor=system_actor, expires_in_seconds=60
        )
        delivery = one_delivery(merchant)
        services.webhook_deliveries_deliver(delivery_ids=[delivery.pk])
        webhook = receiver.received[-1]
        assert len(webhook.headers["webhook-signature"].split(" ")) == 2
        Webhook(endpoint.secret).verify(webhook.body, webhook.headers)
        Webhook(rolled.secret).verify(webhook.body, webhook.headers)

        clock.move_to(T0 + timedelta(seconds=61))
        record(merchant, object_id="pi_2")
        relay.outbox_relay()
        services.webhook_deliveries_deliver_due()
        webhook = receiver.received[-1]
        assert len(webhook.headers["webhook-signature"].split(" ")) == 1
        Webhook(rolled.secret).verify(webhook.body, webhook.headers)


def test_retries_exhausted_dead_letter_then_replay_by_api(
    api, merchant, receiver, endpoint, settings, inline_tasks, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_RETRY_SCHEDULE_SECONDS = [1, 2]
    receiver.fail_next = 100
    with time_machine.travel(T0, tick=False) as clock:
        delivery = one_delivery(merchant)
        services.webhook_deliveries_deliver(delivery_ids=[delivery.pk])
        clock.shift(1.5)
        services.webhook_deliveries_deliver_due()
        clock.shift(2.5)
        services.webhook_deliveries_deliver_due()
    delivery.refresh_from_db()
    assert delivery.status == "dead" and delivery.attempt_count == 3
    assert delivery.next_attempt_at is None and delivery.dead_at is not None
    assert services.webhook_deliveries_deliver_due() == 0  # dead letters are not retried

    endpoint_id = endpoint.endpoint.public_id
    listed = api.get(f"/v1/webhook_endpoints/{endpoint_id}/deliveries", {"status": "dead"})
    assert listed.status_code == 200
    [row] = listed.json()["data"]
    assert row["id"] == delivery.public_id
    assert [a["status_code"] for a in row["attempts"]] == [500, 500, 500]

    receiver.fail_next = 0
    with django_capture_on_commit_callbacks(execute=True):
        replayed = api.post(
            f"/v1/webhook_endpoints/{endpoint_id}/deliveries/{delivery.public_id}/replay"
        )
        assert replayed.status_code == 200, replayed.content
        assert replayed.json()["status"] == "pending"  # queued; sent when this commits
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.attempt_count == 4
    assert delivery.replay_count == 1
    [webhook] = receiver.received
    assert webhook.headers["webhook-id"] == delivery.event.public_id  # same id: dedupable
    Webhook(endpoint.secret).verify(webhook.body, webhook.headers)


def test_replay_all_failed_since_a_time(
    api, merchant, receiver, endpoint, settings, inline_tasks, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_RETRY_SCHEDULE_SECONDS = []
    receiver.fail_next = 100
    with time_machine.travel(T0 - timedelta(days=2), tick=False):
        record(merchant, object_id="pi_old")
        relay.outbox_relay()
        services.webhook_deliveries_deliver_due()
    with time_machine.travel(T0, tick=False):
        record(merchant, object_id="pi_new")
        relay.outbox_relay()
        services.webhook_deliveries_deliver_due()
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"dead"}
    receiver.fail_next = 0
    with (
        time_machine.travel(T0 + timedelta(minutes=5), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = api.post(
            f"/v1/webhook_endpoints/{endpoint.endpoint.public_id}/replay",
            {"since": int((T0 - timedelta(hours=1)).timestamp())},
            format="json",
        )
    assert response.status_code == 200, response.content
    assert response.json()["replayed"] == 1
    assert [w.json()["data"]["object"]["id"] for w in receiver.received] == ["pi_new"]
    assert WebhookDelivery.objects.get(event__object_id="pi_old").status == "dead"


def test_an_endpoint_failing_for_days_is_disabled_and_the_merchant_is_told(
    merchant, receiver, make_endpoint, settings
):
    healthy = WebhookReceiver()
    try:
        failing = make_endpoint(receiver.url).endpoint
        watcher = make_endpoint(healthy.url, enabled_events=["webhook_endpoint.disabled"])
        receiver.fail_next = 1000
        with time_machine.travel(T0, tick=False) as clock:
            delivery = one_delivery(merchant)
            services.webhook_deliveries_deliver(delivery_ids=[delivery.pk])
            failing.refresh_from_db()
            assert failing.failing_since == T0
            clock.move_to(T0 + timedelta(days=2))
            assert services.webhook_endpoints_disable_failing() == 0  # not for days yet
            clock.move_to(T0 + timedelta(days=3, minutes=1))
            assert services.webhook_endpoints_disable_failing() == 1
            failing.refresh_from_db()
            assert failing.status == "disabled"
            assert "failed for 3.0 days" in failing.disabled_reason
            delivery.refresh_from_db()
            assert delivery.status == "dead"  # replayable once the endpoint is fixed
            relay.outbox_relay()
            services.webhook_deliveries_deliver_due()
            [told] = healthy.received
            payload = Webhook(watcher.secret).verify(told.body, told.headers)
        assert payload["type"] == "webhook_endpoint.disabled"
        assert payload["data"]["object"]["id"] == failing.public_id
        assert payload["data"]["object"]["status"] == "disabled"
        # a disabled endpoint gets no new deliveries
        record(merchant, object_id="pi_after")
        relay.outbox_relay()
        assert not WebhookDelivery.objects.filter(
            endpoint=failing, event__object_id="pi_after"
        ).exists()
    finally:
        healthy.stop()


def test_a_deleted_endpoint_gets_nothing_more(merchant, receiver, endpoint, system_actor):
    record(merchant)
    relay.outbox_relay()
    services.webhook_endpoint_delete(endpoint=endpoint.endpoint, actor=system_actor)
    assert services.webhook_deliveries_deliver_due() == 0
    assert WebhookDelivery.objects.get().status == "canceled"
    assert receiver.received == []


def test_live_mode_checks_the_address_again_at_delivery_time(merchant, monkeypatch):
    answers = {"ip": "93.184.215.14"}

    def fake_getaddrinfo(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers["ip"], port))]

    monkeypatch.setattr(url_safety.socket, "getaddrinfo", fake_getaddrinfo)
    live = WebhookEndpointFactory(
        merchant=merchant, livemode=True, url="https://hooks.example.com/pay"
    )
    answers["ip"] = "10.0.0.5"  # DNS now points inside our network
    record(merchant, livemode=True)
    relay.outbox_relay()
    services.webhook_deliveries_deliver_due()
    attempt = WebhookDeliveryAttempt.objects.get(delivery__endpoint=live)
    assert attempt.status_code is None and not attempt.succeeded
    assert attempt.error.startswith("refused: Live mode webhook endpoints must resolve")


class _LongBodyHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"error": "x" * 3000}).encode()
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_an_attempt_records_status_latency_and_the_start_of_the_body(merchant, make_endpoint):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LongBodyHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        make_endpoint(f"http://127.0.0.1:{server.server_address[1]}/hook")
        delivery = one_delivery(merchant)
        services.webhook_deliveries_deliver(delivery_ids=[delivery.pk])
    finally:
        server.shutdown()
        server.server_close()
    attempt = WebhookDeliveryAttempt.objects.get()
    assert attempt.status_code == 503
    assert attempt.response_body.startswith('{"error": "xxx')
    assert len(attempt.response_body) == 500
    delivery.refresh_from_db()
    assert delivery.last_error == "HTTP 503" and delivery.status == "pending"


def test_an_unreachable_endpoint_is_a_failed_attempt(merchant, make_endpoint):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    make_endpoint(f"http://127.0.0.1:{port}/hook")
    delivery = one_delivery(merchant)
    services.webhook_deliveries_deliver(delivery_ids=[delivery.pk])
    attempt = WebhookDeliveryAttempt.objects.get()
    assert attempt.status_code is None and "refused" in attempt.error.lower()
    assert WebhookEndpoint.objects.get().failing_since is not None
    assert OutboxEvent.objects.count() == 1
