"""Reads of the connectors app."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from apps.connectors import health
from apps.connectors.fees import REGION_GROUPS, estimate_fee_from_schedule, fee_line
from apps.connectors.health import (
    HEALTH_WINDOW_MAX,
    SEGMENTS,
    AuthRate,
    HealthSnapshot,
    auth_rates,
    breaker_snapshots,
    latency_p95,
    segment_values,
)
from apps.connectors.models import Connector
from apps.core.errors import NotFoundError
from apps.core.money import currency_exponent

# What routing reads about connectors besides the rows: rolling health, authorization rates per
# segment, latency, breaker states (Redis, apps.connectors.health) and the fee schedules' math.
__all__ = [
    "HEALTH_WINDOW_MAX",
    "REGION_GROUPS",
    "SEGMENTS",
    "AuthRate",
    "HealthSnapshot",
    "auth_rates",
    "breaker_snapshots",
    "estimate_fee_from_schedule",
    "latency_p95",
    "segment_values",
]


def connector_list(*, merchant_id: int, livemode: bool):
    return Connector.objects.filter(merchant_id=merchant_id, livemode=livemode)


def connector_get(
    *, merchant_id: int, livemode: bool, public_id: str, param: str = "connector"
) -> Connector:
    try:
        return connector_list(merchant_id=merchant_id, livemode=livemode).get(public_id=public_id)
    except Connector.DoesNotExist:
        raise NotFoundError(f"No such connector: {public_id!r}.", param=param) from None


@dataclass(frozen=True)
class ConnectorHealthView:
    connector_id: str
    breaker_state: str  # closed | open | half-open | forced_open | forced_closed
    fail_counter: int
    health: health.HealthSnapshot | None

    def as_dict(self) -> dict:
        return {
            "breaker": self.breaker_state,
            "consecutive_failures": self.fail_counter,
            **(self.health.as_dict() if self.health else {}),
        }


def connector_health(*, connectors: list[Connector]) -> dict[str, ConnectorHealthView]:
    """Breaker state and rolling health per connector (admin, API)."""
    ids = [c.public_id for c in connectors]
    try:
        snaps = health.breaker_snapshots(ids)
        stats = health.snapshots(ids)
    except redis.RedisError:
        return {cid: ConnectorHealthView(cid, "unknown", 0, None) for cid in ids}
    return {
        cid: ConnectorHealthView(
            cid, snaps[cid].effective_state, snaps[cid].fail_counter, stats[cid]
        )
        for cid in ids
    }


def connector_settlement_delays() -> dict[str, int]:
    """Seconds after capture until a connector's funds count as settled (pending → available),
    keyed by connector public id, for the ledger's release job."""
    return {
        public_id: days * 86400
        for public_id, days in Connector.objects.values_list("public_id", "settlement_delay_days")
    }


def connector_get_for_webhook(*, public_id: str) -> Connector:
    """Unscoped on purpose: a PSP names the connector in the webhook URL; the signature,
    checked with that connector's secret, is what authenticates the request."""
    try:
        return Connector.objects.get(public_id=public_id)
    except Connector.DoesNotExist:
        raise NotFoundError(f"No such connector: {public_id!r}.", param="connector_id") from None


def connector_get_unscoped(*, public_id: str) -> Connector:
    """For staff tools (the `reconcile` command): any merchant's connector by public id."""
    try:
        return Connector.objects.get(public_id=public_id)
    except Connector.DoesNotExist:
        raise NotFoundError(f"No such connector: {public_id!r}.", param="connector") from None


def connectors_by_ids(*, ids: list[int]) -> list[Connector]:
    return list(Connector.objects.filter(pk__in=ids))


def estimate_fee(
    *, connector: Connector, amount: int, currency: str, brand: str = "*", region: str = "*"
) -> int:
    """PSP fee in minor units from the connector's fee schedule (apps.routing.fees): the most
    specific matching line wins (brand, then region, then currency); rounded half up.
    `region` is the issuer's country code ("*" when unknown)."""
    return estimate_fee_from_schedule(
        connector.fee_schedule, amount=amount, currency=currency, brand=brand, region=region
    )


def connector_endpoints() -> dict[int, str]:
    """Where each connector's PSP calls go, by connector id ("" when its row no longer fits the
    platform's allow-list): the money audit uses it to tell which connectors the PSP simulator
    serves."""
    from apps.connectors.representations import endpoint_url_or_none

    return {c.pk: endpoint_url_or_none(c) or "" for c in Connector.objects.all()}


# the simulator's (and the default) dispute fee: 15.00 in the payment's currency
DEFAULT_DISPUTE_FEE_MAJOR = 15


def connector_dispute_fee(*, connector_id: int, currency: str) -> int:
    """The PSP's fee per dispute in minor units: the connector's fee schedule line of kind
    "dispute" for the currency (or "*"), else 15.00 in that currency."""
    connector = Connector.objects.only("fee_schedule").get(pk=connector_id)
    line = fee_line(connector.fee_schedule or [], currency=currency, kind="dispute")
    if line is not None:
        return int(line.get("fixed", 0))
    return DEFAULT_DISPUTE_FEE_MAJOR * 10 ** currency_exponent(currency)
