from tests.intents.conftest import (  # noqa: F401  (fixtures)
    adyen_connector,
    connector_names,
    connectors,
    platform_simulator,
    simulator_url,
    stripe_connector,
)
