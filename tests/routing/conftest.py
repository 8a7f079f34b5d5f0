"""Routing fixtures: the simulator and its two connectors (shared with tests/intents), a
connector factory that needs no PSP, and helpers to decide and to create profiles."""

from __future__ import annotations

import uuid

import pytest

from apps.routing import selectors, strategies
from tests.factories import ConnectorFactory, RoutingProfileFactory
from tests.intents.conftest import (  # noqa: F401  (fixtures)
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


@pytest.fixture(autouse=True)
def _fresh_routing_stats(settings):
    """Strategies read rolling stats through a short per-process cache: off in tests, so a
    recorded outcome is visible to the very next decision."""
    settings.ROUTING_STATS_CACHE_SECONDS = 0
    strategies.rng.seed(1234)


@pytest.fixture
def make_connector(merchant):
    """A connector that is never called (engine tests; on the test settings' simulator, where
    nothing listens): defaults take eur/usd, every brand."""

    def make(name: str | None = None, *, merchant_=None, **overrides):
        return ConnectorFactory(
            merchant=merchant_ or merchant,
            name=name or f"c-{uuid.uuid4().hex[:6]}",
            **overrides,
        )

    return make


@pytest.fixture
def activate(merchant):
    """Creates and activates a profile from rules (and a fallback)."""

    def make(rules, fallback=None, *, name="profile", merchant_=None):
        return RoutingProfileFactory(
            merchant=merchant_ or merchant,
            name=name,
            rules=rules,
            fallback=[getattr(c, "public_id", c) for c in fallback or []],
            activate=True,
        )

    return make


CARD = {
    "brand": "visa",
    "funding": "credit",
    "bin": "424242",
    "issuer_country": "US",
    "last4": "4242",
}


@pytest.fixture
def decide(merchant):
    """route_for_payment for this merchant, with sensible defaults."""

    def run(
        *,
        amount=2000,
        currency="eur",
        card=None,
        intent_id=None,
        exclude=frozenset(),
        metadata=None,
        customer_country="",
        merchant_=None,
    ):
        return selectors.route_for_payment(
            merchant_id=(merchant_ or merchant).id,
            livemode=False,
            currency=currency,
            card_facts={**CARD, **(card or {})},
            exclude=exclude,
            amount=amount,
            intent_id=intent_id or f"pi_{uuid.uuid4().hex}",
            metadata=metadata or {},
            customer_country=customer_country,
        )

    return run


def first(decision) -> str:
    return decision.candidates[0].public_id if decision.candidates else ""
