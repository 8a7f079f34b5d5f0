"""Radar's fixtures: the simulator's connectors (one dialect at a time) and rule helpers."""

from __future__ import annotations

import pytest

from apps.risk import engine
from tests.intents.conftest import (  # noqa: F401  (fixtures)
    adyen_connector,
    connector_names,
    platform_simulator,
    sim,
    simulator_url,
    stripe_connector,
    tokenize,
)


@pytest.fixture(autouse=True)
def _fresh_rule_cache():
    engine.cache_clear()
    yield
    engine.cache_clear()


@pytest.fixture
def pay(api, tokenize):  # noqa: F811
    """Create + confirm in one call; `ip`: the shopper's address in the Radar-Client-Ip
    header. Returns the response."""

    def make(
        number: str = "4242424242424242",
        amount: int = 2000,
        currency: str = "eur",
        capture_method: str = "automatic",
        ip: str | None = None,
        **extra,
    ):
        headers = {"HTTP_RADAR_CLIENT_IP": ip} if ip else {}
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


@pytest.fixture(params=["stripe", "adyen"])
def dialect_connector(request):
    """One connector on the simulator, in each dialect in turn."""
    return request.getfixturevalue(f"{request.param}_connector")


@pytest.fixture
def rule(api):
    def make(action: str, predicate: str, **extra) -> dict:
        response = api.post(
            "/v1/radar/rules", {"action": action, "predicate": predicate, **extra}, format="json"
        )
        assert response.status_code == 200, response.content
        return response.json()

    return make
