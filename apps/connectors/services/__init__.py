"""Writes of the connectors app: connectors (credentials sealed, endpoints from the platform's
allow-list, fee schedules), their breakers, and their health (auto-disable, probes, re-enable).
PSP calls themselves go through apps.connectors.gateway.

Callers import the services from here (`from apps.connectors import services`):
- `connectors`: create, validate and update a connector; its credentials, endpoint URL and the
  adapter configuration the gateway builds from them;
- `availability`: whether it takes traffic: the ops breaker override, health recording and
  evaluation, auto-disable, probes and automatic re-enable;
- `_shared`: the disabled reasons and the error helper both use."""

from apps.connectors.services._shared import (
    AUTO_DISABLED,
    ENDPOINT_NOT_ALLOWED,
    MANUALLY_DISABLED,
)
from apps.connectors.services.availability import (
    connector_auto_disable,
    connector_auto_enable,
    connector_breaker_force,
    connector_health_evaluate,
    connector_health_record,
    connector_probe,
    connectors_health_evaluate,
    connectors_probe_disabled,
    evaluate_recorded,
)
from apps.connectors.services.connectors import (
    CONNECTOR_SETTINGS,
    connector_config,
    connector_create,
    connector_credentials,
    connector_endpoint_url,
    connector_endpoint_validate,
    connector_simulator_account,
    connector_update,
    connector_validate,
)

__all__ = [
    "AUTO_DISABLED",
    "CONNECTOR_SETTINGS",
    "ENDPOINT_NOT_ALLOWED",
    "MANUALLY_DISABLED",
    "connector_auto_disable",
    "connector_auto_enable",
    "connector_breaker_force",
    "connector_config",
    "connector_create",
    "connector_credentials",
    "connector_endpoint_url",
    "connector_endpoint_validate",
    "connector_health_evaluate",
    "connector_health_record",
    "connector_probe",
    "connector_simulator_account",
    "connector_update",
    "connector_validate",
    "connectors_health_evaluate",
    "connectors_probe_disabled",
    "evaluate_recorded",
]
