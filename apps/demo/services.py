"""Demo data for `make run`, composed from the other apps' services: the demo routing profile
over the simulator's two connectors, the simulator's webhooks pointed at our inbound URL, and a
merchant webhook endpoint. Nothing depends on this app."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import quote

import requests

from apps.connectors import services as connector_services
from apps.core.audit import Actor
from apps.core.errors import InvalidRequestError
from apps.events import selectors as events_selectors
from apps.events import services as events_services
from apps.routing import selectors as routing_selectors
from apps.routing import services as routing_services

if TYPE_CHECKING:
    from apps.routing.models import RoutingProfile

logger = logging.getLogger(__name__)


def demo_routing_profile_seed(
    *, merchant, connectors: list, actor: Actor | None = None
) -> RoutingProfile:
    """The demo profile over two connectors (the simulator's Stripe and Adyen), active.
    Idempotent: an existing "Demo routing" profile is returned as it is."""
    actor = actor or Actor.system("seed_demo")
    if len(connectors) < 2:
        raise InvalidRequestError(
            "The demo profile needs two connectors.", code="parameter_invalid", param="connectors"
        )
    livemode = connectors[0].livemode
    existing = routing_selectors.routing_profile_find(
        merchant_id=merchant.id, livemode=livemode, name="Demo routing"
    )
    if existing is not None:
        return existing
    a, b = connectors[0].public_id, connectors[1].public_id
    rules = [
        {
            "name": "Large tickets: cheapest PSP",
            "match": "all",
            "conditions": [{"field": "amount", "op": "gte", "value": 50_000}],
            "strategy": {"type": "least_cost", "connectors": [a, b]},
        },
        {
            "name": "Debit cards: best authorization rate",
            "match": "all",
            "conditions": [{"field": "funding", "op": "in", "value": ["debit", "prepaid"]}],
            "strategy": {
                "type": "success_rate",
                "connectors": [a, b],
                "exploration": 0.1,
                "segment": "brand_currency",
                "window": 100,
                "min_samples": 10,
            },
        },
        {
            "name": "USD: fastest PSP",
            "match": "all",
            "conditions": [{"field": "currency", "op": "eq", "value": "usd"}],
            "strategy": {"type": "lowest_latency", "connectors": [a, b], "exploration": 0.05},
        },
        {
            "name": "Everything else: 80/20 A/B test",
            "match": "all",
            "conditions": [],
            "strategy": {
                "type": "weighted",
                "weights": [{"connector": a, "weight": 80}, {"connector": b, "weight": 20}],
            },
        },
    ]
    return routing_services.routing_profile_create(
        merchant=merchant,
        livemode=livemode,
        name="Demo routing",
        rules=rules,
        fallback=[a, b],
        actor=actor,
        note="seeded by the demo",
        activate=True,
    )


class SimulatorUnavailable(Exception):
    pass


def psp_simulator_webhooks_register(
    *, connectors: list, platform_base_url: str, simulator_url: str
) -> dict[str, str]:
    """Registers `<platform>/webhooks/psp/<connector id>` as the webhook target of each
    simulator connector's account at the PSP simulator (`PUT /_sim/connectors/<name>/webhook`,
    the name being the connector's simulated account), signed with the connector's own webhook
    secret. Plain HTTP: the simulator is another process. Other connectors are skipped."""
    registered = {}
    for connector in connectors:
        name = connector_services.connector_simulator_account(connector)
        if name is None:
            continue
        credentials = connector_services.connector_credentials(connector)
        secret = (
            credentials.get("hmac_key")
            if connector.connector_type == "adyen"
            else credentials.get("webhook_secret")
        ) or ""
        target = f"{platform_base_url.rstrip('/')}/webhooks/psp/{connector.public_id}"
        body = {"url": target, "secret": secret, "dialect": connector.connector_type}
        try:
            response = requests.put(
                f"{simulator_url.rstrip('/')}/_sim/connectors/{quote(name, safe='')}/webhook",
                json=body,
                timeout=5,
            )
            response.raise_for_status()
        except requests.RequestException as exc:
            raise SimulatorUnavailable(f"{simulator_url}: {exc}") from exc
        registered[connector.public_id] = target
    return registered


def demo_webhooks_seed(
    *,
    merchant,
    connectors,
    platform_base_url: str,
    simulator_url: str,
    endpoint_url: str | None = None,
    actor: Actor | None = None,
) -> dict:
    """Points each demo connector's simulated PSP at our inbound webhook URL, so `make run`
    gets PSP webhooks end to end; optionally registers a merchant webhook endpoint (idempotent:
    by URL). When the simulator is not up yet (seeding runs before honcho starts it), the
    registration is queued as a Celery task that retries until the simulator answers."""
    actor = actor or Actor.system("seed_demo")
    result: dict = {"psp_webhooks": {}, "webhook_endpoint": None}
    try:
        result["psp_webhooks"] = psp_simulator_webhooks_register(
            connectors=list(connectors),
            platform_base_url=platform_base_url,
            simulator_url=simulator_url,
        )
    except SimulatorUnavailable:
        from apps.demo.tasks import register_simulator_webhooks

        try:
            register_simulator_webhooks.apply_async(
                ([c.pk for c in connectors], platform_base_url, simulator_url), countdown=2
            )
            result["psp_webhooks"] = {"queued": True}
        except Exception:
            logger.warning("simulator unreachable and broker down: PSP webhooks not registered")
            result["psp_webhooks"] = {"queued": False}
    if endpoint_url:
        existing = events_selectors.webhook_endpoint_find(
            merchant_id=merchant.id, livemode=False, url=endpoint_url
        )
        if existing is None:
            issued = events_services.webhook_endpoint_create(
                merchant=merchant,
                livemode=False,
                url=endpoint_url,
                enabled_events=["*"],
                actor=actor,
                description="demo endpoint",
            )
            result["webhook_endpoint"] = {
                "id": issued.endpoint.public_id,
                "secret": issued.secret,
                "created": True,
            }
        else:
            result["webhook_endpoint"] = {"id": existing.public_id, "created": False}
    return result


DISPUTE_CARD = "4000000000000259"  # the simulator disputes it (fraudulent) after capture
DEMO_DISPUTE_LABEL = "disputed_payment"


def demo_disputed_payment_seed(*, merchant, actor: Actor | None = None) -> str | None:
    """A payment with the simulator's dispute test card: the simulator opens a dispute on it
    (ConnectorSettings.dispute_delay_ms after capture) and notifies us, so `make run` shows a
    disputed payment end to end. Idempotent (one per merchant). Raises SimulatorUnavailable
    when the payment could not reach the simulator (the caller retries)."""
    from apps.intents import selectors as intent_selectors
    from apps.intents import services as intent_services
    from apps.vault import services as vault_services

    actor = actor or Actor.system("seed_demo")
    existing = (
        intent_selectors.intent_list(merchant_id=merchant.id, livemode=False)
        .filter(metadata__demo=DEMO_DISPUTE_LABEL, amount_received__gt=0)
        .first()
    )
    if existing is not None:
        return existing.public_id
    method = vault_services.payment_method_create(
        merchant=merchant,
        livemode=False,
        number=DISPUTE_CARD,
        exp_month=12,
        exp_year=2034,
        cvc="123",
        billing_name="Demo Shopper",
        actor=actor,
    )
    intent = intent_services.intent_create(
        merchant=merchant,
        livemode=False,
        amount=4900,
        currency="eur",
        actor=actor,
        payment_method=method.public_id,
        description="Demo: a payment the shopper disputes",
        metadata={"demo": DEMO_DISPUTE_LABEL},
    )
    intent = intent_services.intent_confirm(intent=intent, actor=actor)
    if intent.amount_received <= 0:
        raise SimulatorUnavailable(f"the demo payment {intent.public_id} is {intent.status}")
    return intent.public_id
