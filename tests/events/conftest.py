"""Events fixtures: a local merchant receiver, endpoints, relay/delivery helpers, and the
simulator + connector fixtures of the checkout-plane tests."""

from __future__ import annotations

import pytest

from apps.events import relay, tasks
from apps.events.models import WebhookEndpoint
from apps.events.services import IssuedEndpoint
from tests.factories import WebhookEndpointFactory
from tests.intents.conftest import (  # noqa: F401  (fixtures)
    Simulator,
    adyen_connector,
    connector_names,
    connectors,
    pay,
    platform_simulator,
    sim,
    simulator_url,
    stripe_connector,
    tokenize,
)
from tests.support.webhook_receiver import WebhookReceiver

IDEMPOTENCY_MIDDLEWARE = "apps.events.middleware.IdempotencyKeyContextMiddleware"


@pytest.fixture(autouse=True)
def _idempotency_key_middleware(settings):
    """Until settings list it: events name the Idempotency-Key of the call that caused them."""
    if IDEMPOTENCY_MIDDLEWARE not in settings.MIDDLEWARE:
        settings.MIDDLEWARE = [*settings.MIDDLEWARE, IDEMPOTENCY_MIDDLEWARE]


@pytest.fixture
def receiver():
    server = WebhookReceiver()
    yield server
    server.stop()


@pytest.fixture
def make_endpoint(merchant):
    """An endpoint of the merchant, as the service issues it: `.endpoint` and its `.secret`."""

    def make(url: str, enabled_events=("*",), livemode: bool = False, **extra) -> IssuedEndpoint:
        endpoint = WebhookEndpointFactory(
            merchant=merchant,
            livemode=livemode,
            url=url,
            enabled_events=list(enabled_events),
            **extra,
        )
        return IssuedEndpoint(endpoint=endpoint, secret=endpoint.secret)

    return make


@pytest.fixture
def endpoint(make_endpoint, receiver):
    """An endpoint for every event type, pointed at the local receiver; `.secret` is whsec_…"""
    return make_endpoint(receiver.url)


def relay_all() -> int:
    return relay.outbox_relay()


def enabled_endpoints(merchant) -> list[WebhookEndpoint]:
    return list(WebhookEndpoint.objects.filter(merchant=merchant, status="enabled"))


@pytest.fixture
def enqueued(monkeypatch):
    """PSP webhook processing tasks the view enqueues (ids), instead of sending them."""
    calls = []
    monkeypatch.setattr(
        tasks.process_psp_webhook, "apply_async", lambda args, **kwargs: calls.append(args[0])
    )
    return calls
