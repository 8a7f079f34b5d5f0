"""End to end: a real Celery worker, the simulator sending PSP webhooks with duplication and
reordering on, the platform served over HTTP. Every intent ends in the right state and every
merchant endpoint gets each event exactly once (per webhook-id), correctly signed."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import pytest
from standardwebhooks import Webhook

from apps.demo import services as demo_services
from apps.events import catalog, tasks
from apps.events.models import Event, InboundWebhook, OutboxEvent, WebhookDelivery
from apps.intents.models import PaymentIntent, Refund
from apps.psp_simulator.control_client import SimulatorControl
from tests.factories import ConnectorFactory
from tests.support.celery_worker import running_worker
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REFUND_FAILS = "4000000000005126"
CAPTURE_FAILS = "4000009900000053"


class MiniBeat:
    """What beat does in production: sends the sweep tasks to the worker now and then."""

    def __init__(self, every: float = 2.0) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            for task in (
                tasks.relay_outbox,
                tasks.deliver_due_webhooks,
                tasks.process_due_psp_webhooks,
            ):
                try:
                    task.apply_async(retry=False)
                except Exception:
                    continue

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_webhooks_both_ways_with_duplication_and_reordering(
    api, merchant, simulator_url, platform_simulator, live_server, make_endpoint
):
    suffix = uuid.uuid4().hex[:8]
    stripe = ConnectorFactory(
        merchant=merchant,
        name=f"e2e-stripe-{suffix}",
        simulator_account=f"e2e-stripe-{suffix}",
        supported_currencies=["eur"],
        priority=1,
        read_timeout_ms=5000,
    )
    adyen = ConnectorFactory(
        adyen=True,
        merchant=merchant,
        name=f"e2e-adyen-{suffix}",
        simulator_account=f"e2e-adyen-{suffix}",
        supported_currencies=["usd"],
        priority=2,
        read_timeout_ms=5000,
    )
    control = SimulatorControl(simulator_url)
    # the demo seeding path registers our inbound URL at the simulator
    registered = demo_services.psp_simulator_webhooks_register(
        connectors=[stripe, adyen], platform_base_url=live_server.url, simulator_url=simulator_url
    )
    assert set(registered) == {stripe.public_id, adyen.public_id}
    for index, connector in enumerate((stripe, adyen)):
        name = connector.simulator_account
        control.update_webhook(
            name, duplicate_rate=0.5, reorder_window=3, reorder_max_hold_ms=300, seed=11 + index
        )
        control.update_settings(name, async_outcome_delay_ms=200)

    everything, intents_only = WebhookReceiver(), WebhookReceiver()
    all_events = make_endpoint(everything.url, ["*"])
    some_events = make_endpoint(intents_only.url, ["payment_intent.*", "refund.failed"])
    try:
        with running_worker(concurrency=4), MiniBeat():
            expected, refunds = run_payments(api)
            wait_until(lambda: settled(control, expected, refunds), 45, "everything to settle")
        for public_id, status in expected.items():
            assert PaymentIntent.objects.get(public_id=public_id).status == status, public_id
        for public_id, status in refunds.items():
            assert Refund.objects.get(public_id=public_id).status == status, public_id

        # PSP side: the simulator really duplicated and reordered; duplicates were ignored
        assert InboundWebhook.objects.filter(status="duplicate").exists()
        assert not InboundWebhook.objects.exclude(status__in=["processed", "duplicate"]).exists()
        captured_failed = PaymentIntent.objects.get(
            public_id=next(k for k, v in expected.items() if v == "requires_capture")
        )
        assert OutboxEvent.objects.filter(
            object_id=captured_failed.public_id, event_type="payment_intent.capture_failed"
        ).exists()

        # merchant side: each event exactly once per endpoint, all signed
        for receiver, issued in ((everything, all_events), (intents_only, some_events)):
            wanted = {
                e.public_id
                for e in Event.objects.filter(merchant=merchant)
                if catalog.endpoint_wants(issued.endpoint.enabled_events, e.type)
            }
            ids = Counter(w.headers["webhook-id"] for w in receiver.received)
            assert set(ids) == wanted
            assert max(ids.values()) == 1, "an event was delivered twice"
            verifier = Webhook(issued.secret)
            for webhook in receiver.received:
                verifier.verify(webhook.body, webhook.headers)
        assert len(intents_only.received) < len(everything.received)
        assert not WebhookDelivery.objects.exclude(status="succeeded").exists()
    finally:
        everything.stop()
        intents_only.stop()
        for connector in (stripe, adyen):
            control.unregister_webhook(connector.simulator_account)


def run_payments(api) -> tuple[dict[str, str], dict[str, str]]:
    def card(number):
        response = api.post(
            "/v1/payment_methods",
            {
                "type": "card",
                "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
            },
            format="json",
        )
        assert response.status_code == 201, response.content
        return response.json()["id"]

    def pay(currency, number="4242424242424242", capture_method="automatic", amount=2000):
        response = api.post(
            "/v1/payment_intents",
            {
                "amount": amount,
                "currency": currency,
                "capture_method": capture_method,
                "payment_method": card(number),
                "confirm": True,
            },
            format="json",
        )
        return response.json() if response.status_code == 200 else response.json()["error"]

    def refund(intent, amount):
        response = api.post(
            "/v1/refunds", {"payment_intent": intent["id"], "amount": amount}, format="json"
        )
        assert response.status_code == 200, response.content
        return response.json()["id"]

    def post(intent, action):
        return api.post(f"/v1/payment_intents/{intent['id']}/{action}", {}, format="json")

    expected, refunds = {}, {}
    for currency in ("eur", "usd"):  # eur routes to Stripe, usd to Adyen
        auto = pay(currency)
        expected[auto["id"]] = "succeeded"
        refunds[refund(auto, 500)] = "succeeded"

        manual = pay(currency, capture_method="manual")
        assert post(manual, "capture").status_code == 200
        expected[manual["id"]] = "succeeded"

        to_cancel = pay(currency, capture_method="manual")
        assert post(to_cancel, "cancel").status_code == 200
        expected[to_cancel["id"]] = "canceled"

        refund_fails = pay(currency, REFUND_FAILS)
        expected[refund_fails["id"]] = "succeeded"
        refunds[refund(refund_fails, 700)] = "failed"

        declined = pay(currency, "4000000000000002")
        expected[declined["payment_intent"]["id"]] = "requires_payment_method"

    capture_fails = pay("usd", CAPTURE_FAILS, capture_method="manual")
    post(capture_fails, "capture")  # Adyen says "received"; CAPTURE success=false follows
    expected[capture_fails["id"]] = "requires_capture"
    return expected, refunds


def settled(control: SimulatorControl, expected: dict, refunds: dict) -> bool:
    control.flush_webhooks()
    if any(d["status"] in ("held", "scheduled") for d in control.webhook_deliveries()):
        return False
    if InboundWebhook.objects.filter(
        status__in=["received", "pending", "processing", "retrying"]
    ).exists():
        return False
    if OutboxEvent.objects.filter(relayed_at__isnull=True).exists():
        return False
    if WebhookDelivery.objects.exclude(status="succeeded").exists():
        return False
    states = dict(
        PaymentIntent.objects.filter(public_id__in=expected).values_list("public_id", "status")
    )
    refund_states = dict(
        Refund.objects.filter(public_id__in=refunds).values_list("public_id", "status")
    )
    return states == expected and refund_states == refunds
