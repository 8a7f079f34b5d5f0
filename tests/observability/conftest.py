"""Observability tests reuse the checkout plane's fixtures: the real simulator, two connectors."""

from tests.intents.conftest import (  # noqa: F401
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
