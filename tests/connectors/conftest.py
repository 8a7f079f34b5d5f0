"""Connector fixtures: the simulator and its connectors (tests/intents), the engine tests'
connector factory (tests/routing)."""

from tests.intents.conftest import (  # noqa: F401  (fixtures)
    ADYEN_CREDENTIALS,
    STRIPE_CREDENTIALS,
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
from tests.routing.conftest import _fresh_routing_stats, make_connector  # noqa: F401
