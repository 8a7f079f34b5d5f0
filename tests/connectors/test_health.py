"""Connector health: rolling metrics in Redis, automatic disable over the error threshold,
re-enable when probes succeed, and every automatic change in the audit log."""

from __future__ import annotations

import pytest

from apps.connectors import gateway, health, selectors, services, tasks
from apps.core.models import AuditLogEntry
from apps.psp_adapters.contract import Outcome, PSPResult

pytestmark = pytest.mark.django_db

OK = PSPResult(outcome=Outcome.APPROVED, http_status=200, latency_ms=120)
DECLINED = PSPResult(
    outcome=Outcome.SOFT_DECLINE, decline_code="do_not_honor", http_status=402, latency_ms=90
)
FAILED = PSPResult(outcome=Outcome.UNKNOWN, http_status=500, latency_ms=40)
FACTS = {"brand": "visa", "funding": "credit", "issuer_country": "US", "currency": "eur"}


def _authorize(connector, result):
    """An authorization through the gateway whose adapter answers `result`."""
    return gateway.call(
        connector, gateway.Operation.AUTHORIZE, lambda adapter: result, reference="t", facts=FACTS
    )


def _record(connector, result, n=1):
    for _ in range(n):
        services.connector_health_record(connector=connector, result=result, facts=FACTS)


def test_rolling_success_rate_error_rate_and_p95(make_connector):
    connector = make_connector()
    _record(connector, OK, 14)
    _record(connector, DECLINED, 4)
    _record(connector, FAILED, 2)
    view = selectors.connector_health(connectors=[connector])[connector.public_id]
    assert view.as_dict() == {
        "breaker": "closed",
        "consecutive_failures": 0,
        "calls": 20,
        "success_rate": 0.7,
        "error_rate": 0.1,
        "p95_latency_ms": 120,
        "window_seconds": 300,
    }


def test_error_rate_over_the_threshold_disables_the_connector_and_audits(make_connector, settings):
    settings.ROUTING_AUTO_DISABLE_MIN_CALLS = 10
    flaky, other = make_connector("flaky"), make_connector("other")
    _record(flaky, OK, 5)
    _record(flaky, FAILED, 4)
    flaky.refresh_from_db()
    assert flaky.enabled  # 9 calls: under the minimum
    health.client().delete(f"routing:evaluating:{flaky.public_id}")  # the 2 s throttle
    _record(flaky, FAILED)  # 10 calls, 50 % errors
    flaky.refresh_from_db()
    assert (flaky.enabled, flaky.disabled_reason) == (False, "auto_error_rate")
    entry = AuditLogEntry.objects.get(action="connector.auto_disabled")
    assert entry.object_id == flaky.public_id and entry.actor_type == "system"
    assert entry.changes["health"][1]["error_rate"] == 0.5
    other.refresh_from_db()
    assert other.enabled


def test_the_last_enabled_connector_is_never_disabled(make_connector, settings):
    settings.ROUTING_AUTO_DISABLE_MIN_CALLS = 5
    only = make_connector()
    _record(only, FAILED, 10)
    assert tasks.evaluate_connector_health() == 0
    only.refresh_from_db()
    assert only.enabled


def test_probes_re_enable_a_connector_once_it_answers_again(
    stripe_connector, adyen_connector, sim, connector_names, settings, system_actor
):
    settings.ROUTING_AUTO_DISABLE_MIN_CALLS = 5
    settings.ROUTING_PROBE_SUCCESSES_TO_ENABLE = 2
    _record(adyen_connector, FAILED, 6)
    tasks.evaluate_connector_health()
    adyen_connector.refresh_from_db()
    assert not adyen_connector.enabled
    # still down: probes fail, it stays disabled
    sim.faults(connector_names["adyen"], outage=True)
    assert tasks.probe_disabled_connectors() == 0
    # back up: after two successful probes in a row it is enabled, with a clean slate
    sim.faults(connector_names["adyen"])
    assert tasks.probe_disabled_connectors() == 0
    assert tasks.probe_disabled_connectors() == 1
    adyen_connector.refresh_from_db()
    assert (adyen_connector.enabled, adyen_connector.disabled_reason) == (True, "")
    assert health.snapshots([adyen_connector.public_id])[adyen_connector.public_id].calls == 0
    entry = AuditLogEntry.objects.get(action="connector.auto_enabled")
    assert entry.changes["successful_probes"] == [None, 2]
    # a manually disabled connector is never re-enabled by probes
    services.connector_update(connector=stripe_connector, actor=system_actor, enabled=False)
    assert tasks.probe_disabled_connectors() == 0
    stripe_connector.refresh_from_db()
    assert not stripe_connector.enabled


def test_probes_of_a_stripe_connector(stripe_connector, sim, connector_names):
    assert services.connector_probe(connector=stripe_connector)
    sim.faults(connector_names["stripe"], outage=True)
    assert not services.connector_probe(connector=stripe_connector)


def test_breaker_transitions_are_audited(make_connector):
    connector = make_connector()
    # through the service, as the confirm path does
    for _ in range(4):
        _authorize(connector, FAILED)
    assert health.breaker(connector.public_id).state == "closed"  # each failure counted once
    _authorize(connector, FAILED)
    assert health.breaker(connector.public_id).state == "open"
    # the same round trips recorded every answer in the connector's health
    view = selectors.connector_health(connectors=[connector])[connector.public_id]
    assert (view.as_dict()["calls"], view.as_dict()["error_rate"]) == (5, 1.0)
    entry = AuditLogEntry.objects.get(action="connector.breaker_open")
    assert entry.changes == {"breaker": ["closed", "open"]}
    assert entry.merchant_id == connector.merchant_id


def test_health_is_recorded_after_redis_lost_its_scripts(make_connector):
    connector = make_connector()
    _authorize(connector, OK)
    health.client().script_flush()  # as after a Redis restart: EVALSHA answers NOSCRIPT
    _authorize(connector, FAILED)
    _authorize(connector, OK)
    view = selectors.connector_health(connectors=[connector])[connector.public_id].as_dict()
    assert (view["calls"], view["error_rate"]) == (3, round(1 / 3, 4))
