"""Connectors through apps.connectors.services: the credentials sealed (AES-256-GCM) and their
hint, the endpoint checked against the platform's allow-list, the audit entry.

By default a test-mode Stripe connector on the platform's simulator endpoint (SIMULATOR_URL;
`settings.SIMULATOR_URL` pointed at a running simulator, e.g. the `platform_simulator` fixture,
before it is called). Its simulated account is its public id unless `simulator_account` names
one. `adyen=True` for an Adyen connector; in live mode the endpoint is the live one."""

from __future__ import annotations

import uuid

import factory

from apps.connectors import services as connector_services
from apps.connectors.models import Connector
from tests.factories.base import ServiceFactory
from tests.factories.merchants import MerchantFactory

STRIPE_CREDENTIALS = {"api_key": "sk_test_simulator_stripe", "webhook_secret": "whsec_simstripe"}
ADYEN_CREDENTIALS = {
    "api_key": "AQE_simulator_adyen",
    "merchant_account": "DemoShopECOM",
    "hmac_key": "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056",
}
CREDENTIALS = {"stripe": STRIPE_CREDENTIALS, "adyen": ADYEN_CREDENTIALS}
# an Adyen company's live URL prefix (https://docs.adyen.com/development-resources/live-endpoints)
ADYEN_LIVE_URL_PREFIX = "1797a841fbb37ca7-AdyenDemo"


class ConnectorFactory(ServiceFactory):
    class Meta:
        model = Connector

    class Params:
        adyen = factory.Trait(connector_type=Connector.Type.ADYEN)

    merchant = factory.SubFactory(MerchantFactory)
    livemode = False
    connector_type = Connector.Type.STRIPE
    name = factory.LazyAttribute(lambda o: f"{o.connector_type}-{uuid.uuid4().hex[:8]}")
    credentials = factory.LazyAttribute(lambda o: dict(CREDENTIALS[o.connector_type]))
    supported_currencies = factory.LazyFunction(lambda: ["eur", "usd"])
    # None: the service's default for the mode (live: the production endpoint)
    endpoint = factory.LazyAttribute(lambda o: None if o.livemode else "simulator")
    live_url_prefix = factory.LazyAttribute(
        lambda o: ADYEN_LIVE_URL_PREFIX if o.livemode and o.connector_type == "adyen" else ""
    )

    @classmethod
    def _create(cls, model_class, **fields) -> Connector:
        return connector_services.connector_create(**fields)
