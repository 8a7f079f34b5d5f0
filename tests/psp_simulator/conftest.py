"""Fixtures for the simulator tests: one real simulator process for the session, talked to
over HTTP. Each test uses its own connector name, so tests never see each other's state."""

from __future__ import annotations

import uuid

import pytest
import requests

from apps.psp_simulator.control_client import SimulatorControl
from tests.support.simulator import start_simulator
from tests.support.webhook_receiver import WebhookReceiver

CARD_EXPIRY = {"exp_month": "12", "exp_year": "2034"}


@pytest.fixture(autouse=True)
def _clean_redis():
    """The simulator tests use no Redis: replaces the suite-wide Redis flush."""
    yield


@pytest.fixture(scope="session")
def simulator_url() -> str:
    base_url, stop = start_simulator()
    yield base_url
    stop()


@pytest.fixture
def control(simulator_url) -> SimulatorControl:
    return SimulatorControl(simulator_url)


@pytest.fixture
def connector() -> str:
    return f"mca_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


@pytest.fixture
def stripe(simulator_url, connector, http):
    return StripeClient(http, f"{simulator_url}/stripe/{connector}")


@pytest.fixture
def adyen(simulator_url, connector, http):
    return AdyenClient(http, f"{simulator_url}/adyen/{connector}")


@pytest.fixture
def receiver():
    webhook_receiver = WebhookReceiver()
    yield webhook_receiver
    webhook_receiver.stop()


class StripeClient:
    """Speaks the Stripe wire format the way our adapter does: form bodies, Bearer auth."""

    def __init__(self, http: requests.Session, base_url: str, api_key: str = "sk_test_sim"):
        self.http = http
        self.base_url = base_url
        self.api_key = api_key

    def post(self, path: str, data=None, *, key: str | None = None, timeout: float = 10, **kw):
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if key:
            headers["Idempotency-Key"] = key
        return self.http.post(
            f"{self.base_url}{path}", data=data or {}, headers=headers, timeout=timeout, **kw
        )

    def get(self, path: str, params=None, *, timeout: float = 10):
        headers = {"Authorization": f"Bearer {self.api_key}"}
        return self.http.get(
            f"{self.base_url}{path}", params=params, headers=headers, timeout=timeout
        )

    def create_intent(
        self,
        number: str = "4242424242424242",
        *,
        amount: int = 1999,
        capture_method: str = "automatic",
        attempt_id: str | None = None,
        key: str | None = None,
        timeout: float = 10,
        **extra,
    ):
        data = {
            "amount": str(amount),
            "currency": "eur",
            "confirm": "true",
            "capture_method": capture_method,
            "payment_method_data[type]": "card",
            "payment_method_data[card][number]": number,
            "payment_method_data[card][exp_month]": CARD_EXPIRY["exp_month"],
            "payment_method_data[card][exp_year]": CARD_EXPIRY["exp_year"],
            "payment_method_data[card][cvc]": "123",
            "metadata[attempt_id]": attempt_id or f"pa_{uuid.uuid4().hex[:10]}",
            **extra,
        }
        return self.post("/v1/payment_intents", data, key=key, timeout=timeout)


class AdyenClient:
    """Speaks Adyen Checkout v71: JSON bodies, X-API-Key."""

    def __init__(self, http: requests.Session, base_url: str, merchant_account: str = "SimShop"):
        self.http = http
        self.base_url = base_url
        self.merchant_account = merchant_account

    def post(self, path: str, body: dict, *, key: str | None = None, timeout: float = 10):
        headers = {"X-API-Key": "AQE_sim_key", "Content-Type": "application/json"}
        if key:
            headers["Idempotency-Key"] = key
        return self.http.post(f"{self.base_url}{path}", json=body, headers=headers, timeout=timeout)

    def payment_body(
        self,
        number: str = "4242424242424242",
        *,
        amount: int = 1999,
        manual_capture: bool = False,
        reference: str | None = None,
        **extra,
    ) -> dict:
        body = {
            "amount": {"value": amount, "currency": "EUR"},
            "reference": reference or f"pa_{uuid.uuid4().hex[:10]}",
            "merchantAccount": self.merchant_account,
            "paymentMethod": {
                "type": "scheme",
                "number": number,
                "expiryMonth": "03",
                "expiryYear": "2030",
                "cvc": "737",
                "holderName": "Ada Lovelace",
            },
            "returnUrl": "https://shop.example/return",
            **extra,
        }
        if manual_capture:
            body["additionalData"] = {"manualCapture": "true"}
        return body

    def pay(self, number: str = "4242424242424242", *, key: str | None = None, timeout=10, **kw):
        return self.post("/v71/payments", self.payment_body(number, **kw), key=key, timeout=timeout)
