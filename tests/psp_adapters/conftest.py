"""Fixtures for the adapter tests. They need no database, Redis or Django settings."""

from __future__ import annotations

import pytest

from apps.psp_adapters import http
from apps.psp_adapters.contract import AuthorizeRequest, CardData
from tests.psp_adapters.fake_psp import FakePSP

CARD_NUMBER = "4242424242424242"
CVC = "737"
API_KEY = "sk_test_adapter_secret_key"


@pytest.fixture(autouse=True)
def _clean_redis():
    """Overrides the suite-wide Redis flush: adapters never touch Redis, so these tests run
    without it (and without Django, under `-p no:django`)."""
    yield


@pytest.fixture
def psp():
    server = FakePSP().start()
    yield server
    server.stop()
    http.close_sessions()  # every test gets fresh connections to its own server


@pytest.fixture
def card() -> CardData:
    return CardData(
        number=CARD_NUMBER, exp_month=3, exp_year=2030, cvc=CVC, holder_name="Ada Lovelace"
    )


@pytest.fixture
def authorize_request(card) -> AuthorizeRequest:
    return AuthorizeRequest(
        attempt_id="pa_1NqA2B3C4D5E6F7G8H9I0J",
        idempotency_key="pa_1NqA2B3C4D5E6F7G8H9I0J-authorize",
        amount=2000,
        currency="eur",
        capture=True,
        card=card,
        description="Order 1042",
        customer_email="ada@example.com",
        return_url="https://pay.example.com/v1/payment_intents/pi_123/return",
        metadata={"payment_intent": "pi_123"},
    )
