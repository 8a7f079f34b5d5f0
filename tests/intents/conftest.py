"""Checkout-plane fixtures: the real PSP simulator in a subprocess and two connectors on it."""

from __future__ import annotations

import uuid

import pytest
import requests

from apps.connectors import services as connector_services
from tests.support.simulator import start_simulator

STRIPE_CREDENTIALS = {"api_key": "sk_test_simulator_stripe", "webhook_secret": "whsec_simstripe"}
ADYEN_CREDENTIALS = {
    "api_key": "AQE_simulator_adyen",
    "merchant_account": "DemoShopECOM",
    "hmac_key": "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056",
}


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
def stripe_connector(merchant, system_actor, platform_simulator, connector_names):
    return connector_services.connector_create(
        merchant=merchant,
        livemode=False,
        name=connector_names["stripe"],
        connector_type="stripe",
        endpoint="simulator",
        simulator_account=connector_names["stripe"],
        credentials=STRIPE_CREDENTIALS,
        supported_currencies=["eur", "usd", "jpy"],
        priority=1,
        actor=system_actor,
        read_timeout_ms=1500,
        fee_schedule=[{"brand": "*", "fixed": 25, "percent_bps": 140}],
    )


@pytest.fixture
def adyen_connector(merchant, system_actor, platform_simulator, connector_names):
    return connector_services.connector_create(
        merchant=merchant,
        livemode=False,
        name=connector_names["adyen"],
        connector_type="adyen",
        endpoint="simulator",
        simulator_account=connector_names["adyen"],
        credentials=ADYEN_CREDENTIALS,
        supported_currencies=["eur", "usd"],
        priority=2,
        actor=system_actor,
        read_timeout_ms=1500,
        fee_schedule=[{"brand": "*", "fixed": 10, "percent_bps": 160}],
    )


@pytest.fixture
def connectors(stripe_connector, adyen_connector):
    return [stripe_connector, adyen_connector]


@pytest.fixture
def tokenize(api):
    def make(number: str = "4242424242424242", cvc: str = "123") -> str:
        response = api.post(
            "/v1/payment_methods",
            {
                "type": "card",
                "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": cvc},
                "billing_details": {"name": "Jane Doe", "email": "jane@example.com"},
            },
            format="json",
        )
        assert response.status_code == 201, response.content
        return response.json()["id"]

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
