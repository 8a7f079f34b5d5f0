"""Checkout-plane fixtures: the real PSP simulator in a subprocess and two connectors on it."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.factories import (  # noqa: F401  (the credentials, imported from here by others)
    ADYEN_CREDENTIALS,
    STRIPE_CREDENTIALS,
    ConnectorFactory,
    PaymentMethodFactory,
)
from tests.support.simulator import start_simulator


@pytest.fixture(scope="session")
def simulator_url():
    base_url, stop = start_simulator()
    yield base_url
    stop()


class Simulator:
    def __init__(self, base_url: str):
        self.base_url = base_url

    def faults(self, name: str, **faults) -> None:
        response = requests.put(
            f"{self.base_url}/_sim/connectors/{name}/faults", json=faults, timeout=5
        )
        response.raise_for_status()

    def charges(self, name: str) -> list[dict]:
        response = requests.get(
            f"{self.base_url}/_sim/charges", params={"connector": name}, timeout=5
        )
        response.raise_for_status()
        body = response.json()
        return body["data"] if isinstance(body, dict) else body


@pytest.fixture
def sim(simulator_url) -> Simulator:
    return Simulator(simulator_url)


@pytest.fixture
def connector_names():
    """Unique simulator connector names per test, so fault settings never leak across tests."""
    suffix = uuid.uuid4().hex[:8]
    return {"stripe": f"stripe-{suffix}", "adyen": f"adyen-{suffix}"}


@pytest.fixture
def platform_simulator(settings, simulator_url) -> str:
    """The test simulator is the platform's simulator (SIMULATOR_URL), as `make run` makes its
    own: connectors reach it through the "simulator" endpoint, and nothing else changes in the
    rule (any other address is still refused)."""
    settings.SIMULATOR_URL = simulator_url
    return simulator_url


@pytest.fixture
def stripe_connector(merchant, platform_simulator, connector_names):
    return ConnectorFactory(
        merchant=merchant,
        name=connector_names["stripe"],
        simulator_account=connector_names["stripe"],
        supported_currencies=["eur", "usd", "jpy"],
        priority=1,
        read_timeout_ms=1500,
        fee_schedule=[{"brand": "*", "fixed": 25, "percent_bps": 140}],
    )


@pytest.fixture
def adyen_connector(merchant, platform_simulator, connector_names):
    return ConnectorFactory(
        adyen=True,
        merchant=merchant,
        name=connector_names["adyen"],
        simulator_account=connector_names["adyen"],
        supported_currencies=["eur", "usd"],
        priority=2,
        read_timeout_ms=1500,
        fee_schedule=[{"brand": "*", "fixed": 10, "percent_bps": 160}],
    )


@pytest.fixture
def connectors(stripe_connector, adyen_connector):
    return [stripe_connector, adyen_connector]


@pytest.fixture
def tokenize(merchant):
    """Tokenizes a card for the merchant (test mode); returns its pm_… id."""

    def make(number: str = "4242424242424242", cvc: str = "123") -> str:
        return PaymentMethodFactory(merchant=merchant, number=number, cvc=cvc).public_id

    return make


@pytest.fixture
def pay(api, tokenize):
    """Create + confirm in one call; returns the response."""

    def make(
        number: str = "4242424242424242",
        amount: int = 2000,
        currency: str = "eur",
        capture_method: str = "automatic",
        key: str | None = None,
        **extra,
    ):
        headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
        return api.post(
            "/v1/payment_intents",
            {
                "amount": amount,
                "currency": currency,
                "capture_method": capture_method,
                "payment_method": tokenize(number),
                "confirm": True,
                **extra,
            },
            format="json",
            **headers,
        )

    return make
