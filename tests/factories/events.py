"""Merchant webhook endpoints through apps.events.services: the URL checked, the signing secret
sealed, the audit entry. The secret (shown once) is on the row as `.secret`."""

from __future__ import annotations

import factory

from apps.events import services as event_services
from apps.events.models import WebhookEndpoint
from tests.factories.base import ServiceFactory
from tests.factories.merchants import MerchantFactory


class WebhookEndpointFactory(ServiceFactory):
    """For every event type; by default at an address where nothing listens (test mode; the
    discard port, so a delivery fails at once and nothing leaves the machine) or, in live mode,
    a public https URL (live endpoints must resolve to public addresses)."""

    class Meta:
        model = WebhookEndpoint

    merchant = factory.SubFactory(MerchantFactory)
    livemode = False
    url = factory.LazyAttribute(
        lambda o: "https://example.com/webhooks" if o.livemode else "http://127.0.0.1:9/webhooks"
    )
    enabled_events = factory.LazyFunction(lambda: ["*"])

    @classmethod
    def _create(cls, model_class, **fields) -> WebhookEndpoint:
        issued = event_services.webhook_endpoint_create(**fields)
        issued.endpoint.secret = issued.secret
        return issued.endpoint
