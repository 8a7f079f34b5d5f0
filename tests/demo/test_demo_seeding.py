"""Demo seeding: `make run` gets PSP webhooks end to end, and a demo endpoint."""

from __future__ import annotations

import time

from apps.demo import services, tasks
from apps.events.models import WebhookEndpoint
from apps.intents.models import PaymentIntent
from apps.psp_simulator.control_client import SimulatorControl


def test_registers_our_inbound_url_at_the_simulator_and_a_demo_endpoint(
    merchant, connectors, simulator_url
):
    result = services.demo_webhooks_seed(
        merchant=merchant,
        connectors=connectors,
        platform_base_url="http://127.0.0.1:8000",
        simulator_url=simulator_url,
        endpoint_url="http://127.0.0.1:9999/hooks",
    )
    control = SimulatorControl(simulator_url)
    for connector in connectors:
        name = connector.simulator_account
        webhook = control.call("GET", f"/connectors/{name}/webhook")["webhook"]
        assert webhook["url"] == f"http://127.0.0.1:8000/webhooks/psp/{connector.public_id}"
        assert webhook["dialect"] == connector.connector_type
        assert result["psp_webhooks"][connector.public_id] == webhook["url"]
    assert result["webhook_endpoint"]["created"] is True
    assert result["webhook_endpoint"]["secret"].startswith("whsec_")

    again = services.demo_webhooks_seed(
        merchant=merchant,
        connectors=connectors,
        platform_base_url="http://127.0.0.1:8000",
        simulator_url=simulator_url,
        endpoint_url="http://127.0.0.1:9999/hooks",
    )
    assert again["webhook_endpoint"] == {"id": result["webhook_endpoint"]["id"], "created": False}
    assert WebhookEndpoint.objects.count() == 1


def test_when_the_simulator_is_not_up_yet_the_registration_is_queued(
    merchant, connectors, monkeypatch
):
    queued = []
    monkeypatch.setattr(
        tasks.register_simulator_webhooks, "apply_async", lambda args, **kwargs: queued.append(args)
    )
    result = services.demo_webhooks_seed(
        merchant=merchant,
        connectors=connectors,
        platform_base_url="http://127.0.0.1:8000",
        simulator_url="http://127.0.0.1:1",
    )
    assert result["psp_webhooks"] == {"queued": True}
    assert queued == [([c.pk for c in connectors], "http://127.0.0.1:8000", "http://127.0.0.1:1")]


def test_the_demo_has_a_payment_the_simulator_disputes(merchant, connectors, simulator_url):
    control = SimulatorControl(simulator_url)
    for connector in connectors:
        control.update_settings(connector.simulator_account, dispute_delay_ms=0)
    first = services.demo_disputed_payment_seed(merchant=merchant)
    assert services.demo_disputed_payment_seed(merchant=merchant) == first  # idempotent
    intent = PaymentIntent.objects.get(public_id=first)
    assert intent.amount_received == 4900
    # the dispute card: the simulator opens a dispute on it right after capture
    deadline = time.monotonic() + 5
    while not control.disputes(intent.connector.simulator_account) and time.monotonic() < deadline:
        time.sleep(0.05)
    (dispute,) = control.disputes(intent.connector.simulator_account)
    assert dispute["payment_id"] == intent.psp_reference and dispute["reason"] == "fraudulent"
