"""The public shape of a connector (API and admin)."""

from __future__ import annotations

from apps.connectors import endpoints
from apps.connectors.models import Connector


def _ts(value) -> int | None:
    return int(value.timestamp()) if value else None


def endpoint_url_or_none(connector: Connector) -> str | None:
    """Where the platform sends this connector's requests; None when the connector no longer
    fits the platform's allow-list (it is refused at call time)."""
    try:
        return endpoints.resolve(
            connector_type=connector.connector_type,
            livemode=connector.livemode,
            endpoint=connector.endpoint,
            live_url_prefix=connector.live_url_prefix,
            simulator_account=connector.simulator_account,
        )
    except endpoints.EndpointRefused:
        return None


def connector_representation(connector: Connector, health: dict | None = None) -> dict:
    """Credentials are never returned: only a hint (`sk_test_…a1b2`)."""
    return {
        "id": connector.public_id,
        "object": "connector",
        "name": connector.name,
        "connector_type": connector.connector_type,
        "endpoint": connector.endpoint,
        "endpoint_url": endpoint_url_or_none(connector),
        "live_url_prefix": connector.live_url_prefix or None,
        "credentials_hint": connector.credentials_hint,
        "enabled": connector.enabled,
        "disabled_reason": connector.disabled_reason or None,
        "priority": connector.priority,
        "supported_currencies": connector.supported_currencies,
        "supported_brands": connector.supported_brands,
        "supported_countries": connector.supported_countries,
        "fee_schedule": connector.fee_schedule,
        "authorization_window_days": connector.authorization_window_days,
        "settlement_delay_days": connector.settlement_delay_days,
        "connect_timeout_ms": connector.connect_timeout_ms,
        "read_timeout_ms": connector.read_timeout_ms,
        "health": health,
        "livemode": connector.livemode,
        "created": _ts(connector.created_at),
        "updated": _ts(connector.updated_at),
    }
