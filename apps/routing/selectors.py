from __future__ import annotations

from dataclasses import dataclass

import redis
from django.conf import settings

from apps.core.errors import NotFoundError
from apps.routing import engine, health
from apps.routing.engine import RouteDecision
from apps.routing.models import Connector, RoutingProfile, RoutingProfileVersion
from apps.routing.rules import PaymentFacts

__all__ = ["RouteDecision", "route_for_payment"]


def connector_list(*, merchant_id: int, livemode: bool):
    return Connector.objects.filter(merchant_id=merchant_id, livemode=livemode)


def connector_get(
    *, merchant_id: int, livemode: bool, public_id: str, param: str = "connector"
) -> Connector:
    try:
        return connector_list(merchant_id=merchant_id, livemode=livemode).get(public_id=public_id)
    except Connector.DoesNotExist:
        raise NotFoundError(f"No such connector: {public_id!r}.", param=param) from None


def route_for_payment(
    *,
    merchant_id: int,
    livemode: bool,
    currency: str,
    card_facts: dict,
    exclude: frozenset[int] = frozenset(),
    amount: int = 0,
    intent_id: str = "",
    metadata: dict | None = None,
    customer_country: str = "",
    payment_method_type: str = "card",
) -> RouteDecision:
    """The one function that decides where a payment goes: the merchant's active routing
    profile (first matching rule -> its strategy -> the fallback list), or, without one, every
    connector by priority. Connectors that cannot take the payment are skipped with a reason
    (already tried, disabled, breaker open, currency/brand/country unsupported, not in route)."""
    facts = PaymentFacts(
        amount=amount,
        currency=currency,
        brand=(card_facts.get("brand") or "").lower(),
        funding=(card_facts.get("funding") or "").lower(),
        bin=card_facts.get("bin") or "",
        issuer_country=(card_facts.get("issuer_country") or "").upper(),
        customer_country=(customer_country or "").upper(),
        payment_method_type=payment_method_type or "card",
        metadata={k: v if isinstance(v, str) else str(v) for k, v in (metadata or {}).items()},
        intent_id=intent_id,
    )
    return engine.decide(merchant_id=merchant_id, livemode=livemode, facts=facts, exclude=exclude)


# --------------------------------------------------------------------------- failover limits


@dataclass(frozen=True)
class ConfirmLimits:
    max_attempts: int
    time_budget_seconds: float


def confirm_limits(*, merchant_id: int, livemode: bool) -> ConfirmLimits:
    """Per-merchant failover bounds (RoutingSettings), else the platform settings. Read from
    the compiled routing the decision used: no query on the failover path."""
    max_attempts, budget = engine.compiled_for(merchant_id, livemode)[0].limits
    return ConfirmLimits(
        max_attempts=max_attempts or settings.CONFIRM_MAX_ATTEMPTS,
        time_budget_seconds=float(budget or settings.CONFIRM_TIME_BUDGET_SECONDS),
    )


# --------------------------------------------------------------------------- profiles


def routing_profile_list(*, merchant_id: int, livemode: bool):
    return RoutingProfile.objects.filter(merchant_id=merchant_id, livemode=livemode).select_related(
        "active_version"
    )


def routing_profile_get(
    *, merchant_id: int, livemode: bool, public_id: str, param: str = "id"
) -> RoutingProfile:
    try:
        return routing_profile_list(merchant_id=merchant_id, livemode=livemode).get(
            public_id=public_id
        )
    except RoutingProfile.DoesNotExist:
        raise NotFoundError(f"No such routing profile: {public_id!r}.", param=param) from None


def routing_profile_latest_version(*, profile: RoutingProfile) -> RoutingProfileVersion | None:
    return profile.versions.order_by("-number").first()


def routing_profile_version_list(*, profile: RoutingProfile):
    return profile.versions.all()


def routing_profile_version_get(
    *, profile: RoutingProfile, number: int, param: str = "version"
) -> RoutingProfileVersion:
    try:
        return profile.versions.get(number=number)
    except RoutingProfileVersion.DoesNotExist:
        raise NotFoundError(
            f"Routing profile {profile.public_id} has no version {number}.", param=param
        ) from None


# --------------------------------------------------------------------------- health


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


def trace_summary(trace: dict | None) -> str:
    """One line for the admin timeline: 'profile v3, rule 1 (EU cards): weighted -> mca_…'."""
    if not trace:
        return ""
    parts = []
    if trace.get("profile"):
        parts.append(
            f"{trace.get('profile_name', trace['profile'])} v{trace.get('profile_version')}"
        )
    else:
        parts.append("no profile (connector priority)")
    rule = trace.get("rule")
    if rule:
        parts.append(f"rule {rule.get('index')} ({rule.get('name')})")
    head = ", ".join(parts) + f": {trace.get('strategy')}"
    ranked = " > ".join(
        f"{c.get('name') or c.get('connector')}"
        + (f" [{c.get('basis')}={c.get('score')}]" if c.get("basis") else "")
        for c in trace.get("candidates", [])
    )
    skipped = ", ".join(f"{cid}: {why}" for cid, why in (trace.get("skipped") or {}).items())
    line = f"{head} -> {ranked or 'no candidate'}"
    if trace.get("variant"):
        line += f"; variant {trace['variant']} (bucket {trace.get('bucket')})"
    if trace.get("explored"):
        line += "; exploration"
    if skipped:
        line += f"; skipped {skipped}"
    return line


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


def connectors_by_ids(*, ids: list[int]) -> list[Connector]:
    return list(Connector.objects.filter(pk__in=ids))


def connector_endpoints() -> dict[int, str]:
    """Where each connector's PSP calls go (its base URL), by connector id: the money audit
    uses it to tell which connectors the PSP simulator serves."""
    return dict(Connector.objects.values_list("pk", "base_url"))
