"""Ops in the admin: endpoints, deliveries with their attempts, PSP webhooks with what they
changed, the dead letters of both directions, and replay/reprocess behind a permission."""

from __future__ import annotations

import pytest

from apps.events import inbound, relay, services
from apps.events.models import InboundWebhook, WebhookDelivery
from apps.events.services import outbox_record
from tests.events.psp_payloads import stripe_event, stripe_pi, stripe_request
from tests.factories import StaffUserFactory

pytestmark = pytest.mark.usefixtures("staff_roles")


def staff(role, merchant):
    return StaffUserFactory(role=role, serves=[merchant])


@pytest.fixture
def dead_delivery(merchant, receiver, endpoint, settings):
    settings.WEBHOOK_RETRY_SCHEDULE_SECONDS = []
    receiver.fail_next = 1
    outbox_record(
        merchant_id=merchant.id,
        livemode=False,
        object_type="payment_intent",
        object_id="pi_1",
        event_type="payment_intent.succeeded",
        payload={"id": "pi_1"},
    )
    relay.outbox_relay()
    services.webhook_deliveries_deliver_due()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "dead"
    return delivery


def test_ops_sees_dead_letters_with_attempts_and_replays_them(
    client, merchant, receiver, dead_delivery, monkeypatch, django_capture_on_commit_callbacks
):
    # patched where the replay services look it up
    monkeypatch.setattr(
        "apps.events.services.deliveries.enqueue_deliveries",
        lambda delivery_ids, **kw: services.webhook_deliveries_deliver(delivery_ids=delivery_ids),
    )
    client.force_login(staff("ops", merchant))
    listed = client.get("/admin/events/deadlettereddelivery/")
    assert list(listed.context["cl"].result_list) == [dead_delivery]
    page = client.get(f"/admin/events/webhookdelivery/{dead_delivery.pk}/change/")
    assert page.status_code == 200 and b"[accepted]" in page.content  # the attempt's body

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/events/webhookdelivery/",
            {"action": "replay_selected", "_selected_action": [dead_delivery.pk]},
        )
    assert response.status_code == 302
    dead_delivery.refresh_from_db()
    assert dead_delivery.status == "succeeded"
    assert len(receiver.received) == 1


def test_support_cannot_replay(client, merchant, dead_delivery):
    client.force_login(staff("support", merchant))
    page = client.get("/admin/events/webhookdelivery/")
    assert page.status_code == 200
    assert "replay_selected" not in page.context["cl"].model_admin.get_actions(page.wsgi_request)
    client.post(
        "/admin/events/webhookdelivery/",
        {"action": "replay_selected", "_selected_action": [dead_delivery.pk]},
    )
    dead_delivery.refresh_from_db()
    assert dead_delivery.status == "dead"


def test_staff_of_another_merchant_sees_nothing(client, merchant, other_merchant, dead_delivery):
    client.force_login(staff("ops", other_merchant))
    assert list(client.get("/admin/events/webhookdelivery/").context["cl"].result_list) == []


@pytest.mark.usefixtures("enqueued")
def test_inbound_webhooks_show_verification_and_what_they_changed(
    client, merchant, stripe_connector
):
    body, headers = stripe_request(stripe_event("payout.paid", {"id": "po_1"}))
    client.post(
        f"/webhooks/psp/{stripe_connector.public_id}",
        body,
        content_type="application/json",
        **headers,
    )
    bad = dict(headers, HTTP_STRIPE_SIGNATURE="t=1,v1=00")
    client.post(
        f"/webhooks/psp/{stripe_connector.public_id}", body, content_type="application/json", **bad
    )
    good = InboundWebhook.objects.get(verification="verified")
    inbound.inbound_webhook_process(webhook_id=good.pk)
    client.force_login(staff("ops", merchant))
    listed = client.get("/admin/events/inboundwebhook/", {"verification__exact": "failed"})
    assert [w.verification for w in listed.context["cl"].result_list] == ["failed"]
    page = client.get(f"/admin/events/inboundwebhook/{good.pk}/change/").content.decode()
    page = page.lower()
    assert "verified" in page and "recorded, not applied" in page and "po_1" in page


@pytest.mark.usefixtures("enqueued")
def test_ops_reprocesses_a_dead_lettered_psp_webhook(
    client, api, merchant, tokenize, stripe_connector, settings
):
    settings.PSP_WEBHOOK_RETRY_SECONDS = []
    body, headers = stripe_request(
        stripe_event("payment_intent.succeeded", stripe_pi("pi_nowhere", attempt_id="pa_nowhere"))
    )
    client.post(
        f"/webhooks/psp/{stripe_connector.public_id}",
        body,
        content_type="application/json",
        **headers,
    )
    webhook = InboundWebhook.objects.get()
    inbound.inbound_webhook_process(webhook_id=webhook.pk)
    webhook.refresh_from_db()
    assert webhook.status == "dead"
    client.force_login(staff("ops", merchant))
    listed = client.get("/admin/events/deadletteredinboundwebhook/")
    assert list(listed.context["cl"].result_list) == [webhook]
    client.post(
        "/admin/events/inboundwebhook/",
        {"action": "reprocess_selected", "_selected_action": [webhook.pk]},
    )
    webhook.refresh_from_db()
    assert webhook.attempts == 2  # ran again (still unmatched: dead again, visibly)
    assert webhook.status == "dead"


@pytest.mark.usefixtures("enqueued")
def test_every_events_admin_page_renders(
    admin_client, merchant, dead_delivery, stripe_connector, client
):
    body, headers = stripe_request(stripe_event("payout.paid", {"id": "po_1"}))
    client.post(
        f"/webhooks/psp/{stripe_connector.public_id}",
        body,
        content_type="application/json",
        **headers,
    )
    objects = {
        "outboxevent": dead_delivery.event.outbox_id,
        "event": dead_delivery.event_id,
        "webhookendpoint": dead_delivery.endpoint_id,
        "webhookdelivery": dead_delivery.pk,
        "deadlettereddelivery": dead_delivery.pk,
        "inboundwebhook": InboundWebhook.objects.get().pk,
    }
    for model, pk in objects.items():
        assert admin_client.get(f"/admin/events/{model}/").status_code == 200, model
        assert admin_client.get(f"/admin/events/{model}/{pk}/change/").status_code == 200, model
    assert admin_client.get("/admin/events/deadletteredinboundwebhook/").status_code == 200
