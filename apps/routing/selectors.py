from __future__ import annotations

from dataclasses import dataclass, field

from apps.core.errors import NotFoundError
from apps.routing.models import Connector


@dataclass
class RouteDecision:
    """The ordered candidates for one confirm, and why the others were left out."""

    candidates: list[Connector]
    skipped: dict[str, str] = field(default_factory=dict)  # connector public id -> reason
    strategy: str = "priority"

    def trace(self) -> dict:
        return {
            "strategy": self.strategy,
            "candidates": [{"connector": c.public_id, "name": c.name, "rank": i + 1}
                           for i, c in enumerate(self.candidates)],
            "skipped": self.skipped,
        }


def connector_list(*, merchant_id: int, livemode: bool):
    return Connector.objects.filter(merchant_id=merchant_id, livemode=livemode)


def connector_get(*, merchant_id: int, livemode: bool, public_id: str) -> Connector:
    try:
        return connector_list(merchant_id=merchant_id, livemode=livemode).get(public_id=public_id)
    except Connector.DoesNotExist:
        raise NotFoundError(f"No such connector: {public_id!r}.", param="connector") from None


def route_for_payment(
    *,
    merchant_id: int,
    livemode: bool,
    currency: str,
    card_facts: dict,
    exclude: frozenset[int] = frozenset(),
) -> RouteDecision:
    """The one function that decides where a payment goes. Today: the merchant's enabled
    connectors that support the currency and brand, by priority. The routing engine replaces
    the body of this function, not its callers."""
    candidates, skipped = [], {}
    for connector in connector_list(merchant_id=merchant_id, livemode=livemode):
        if connector.id in exclude:
            skipped[connector.public_id] = "already_tried"
        elif not connector.enabled:
            skipped[connector.public_id] = "disabled"
        elif currency not in connector.supported_currencies:
            skipped[connector.public_id] = "currency_unsupported"
        elif connector.supported_brands and card_facts.get("brand") not in (
            connector.supported_brands
        ):
            skipped[connector.public_id] = "brand_unsupported"
        elif connector.supported_countries and card_facts.get("issuer_country") not in (
            connector.supported_countries
        ):
            skipped[connector.public_id] = "country_unsupported"
        else:
            candidates.append(connector)
    return RouteDecision(candidates=candidates, skipped=skipped)
