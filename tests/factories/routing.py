"""Routing profiles (validated rules, version 1, the audit entry, activation) and a merchant's
failover limits, through apps.routing.services."""

from __future__ import annotations

import factory

from apps.routing import services as routing_services
from apps.routing.models import RoutingProfile, RoutingSettings
from tests.factories.base import ServiceFactory
from tests.factories.connectors import ConnectorFactory
from tests.factories.merchants import MerchantFactory


class RoutingProfileFactory(ServiceFactory):
    """By default one priority rule over `connectors` (one new connector of the merchant unless
    given), not activated (`activate=True` to activate it)."""

    class Meta:
        model = RoutingProfile

    class Params:
        connectors = None  # only read by the default rules (declarations all resolve)

    merchant = factory.SubFactory(MerchantFactory)
    livemode = False
    name = factory.Sequence(lambda n: f"profile {n}")
    rules = factory.LazyAttribute(
        lambda o: [
            {
                "name": "all",
                "strategy": {
                    "type": "priority",
                    "connectors": [
                        c.public_id
                        for c in o.connectors
                        or [ConnectorFactory(merchant=o.merchant, livemode=o.livemode)]
                    ],
                },
            }
        ]
    )
    fallback = None
    activate = False

    @classmethod
    def _create(cls, model_class, **fields) -> RoutingProfile:
        return routing_services.routing_profile_create(**fields)


class RoutingSettingsFactory(ServiceFactory):
    """A merchant's failover limits (None: the platform's setting)."""

    class Meta:
        model = RoutingSettings

    merchant = factory.SubFactory(MerchantFactory)
    max_attempts = None
    time_budget_seconds = None

    @classmethod
    def _create(cls, model_class, **fields) -> RoutingSettings:
        return routing_services.routing_settings_update(**fields)
