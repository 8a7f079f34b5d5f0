"""/metrics: who may scrape it, the counters the checkout plane moves, the scrape-time gauges."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from apps.core import metrics
from apps.events.models import OutboxEvent
from apps.intents.models import PaymentAttempt, PaymentIntent


def _value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _scrape(client: Client | None = None, **extra) -> dict[str, list]:
    response = (client or Client()).get("/metrics", **extra)
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain")
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


# --------------------------------------------------------------------------- access


@pytest.mark.django_db
def test_metrics_are_not_public(settings):
    settings.METRICS_BEARER_TOKEN = "s3cret-token"
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    assert Client().get("/metrics", **outside).status_code == 404
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong", **outside).status_code == 404
    assert Client().get("/metrics", HTTP_AUTHORIZATION="s3cret-token", **outside).status_code == 404
    assert Client().get("/metrics", REMOTE_ADDR="not-an-ip").status_code == 404
    ok = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token", **outside)
    assert ok.status_code == 200
    assert Client().get("/metrics").status_code == 200  # loopback, allow-listed
    assert Client().post("/metrics").status_code in (404, 405)


@pytest.mark.django_db
def test_an_empty_token_setting_accepts_no_token(settings):
    settings.METRICS_BEARER_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = []
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404
    assert Client().get("/metrics").status_code == 404


# --------------------------------------------------------------------------- the checkout plane


@pytest.mark.django_db
@pytest.mark.usefixtures("connectors")
def test_a_payment_with_a_failover_moves_the_counters(
    pay, sim, connector_names, django_capture_on_commit_callbacks
):
    before = {
        "succeeded": _value(
            "pp_payments_total", mode="test", psp="adyen", status="succeeded", decline_code="none"
        ),
        "failover": _value(
            "pp_payment_failovers_total", mode="test", from_psp="stripe", reason="error"
        ),
        "stripe_error": _value(
            "pp_psp_requests_total", psp="stripe", operation="authorize", outcome="error"
        ),
        "adyen_latency": _value(
            "pp_psp_request_duration_seconds_count", psp="adyen", operation="authorize"
        ),
        "routing": _value("pp_routing_decision_duration_seconds_count"),
        "attempts": _value(
            "pp_payment_attempts_total", mode="test", psp="adyen", outcome="approved"
        ),
    }
    ledger = _value("pp_ledger_postings_total", kind="capture", mode="test")
    sim.faults(connector_names["stripe"], outage=True)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = pay()
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "succeeded"
    # the ledger counts a posting when its transaction commits
    assert _value("pp_ledger_postings_total", kind="capture", mode="test") == ledger
    for callback in callbacks:
        if getattr(callback, "__qualname__", "").startswith("_execute"):
            callback()

    assert (
        _value(
            "pp_payments_total", mode="test", psp="adyen", status="succeeded", decline_code="none"
        )
        == before["succeeded"] + 1
    )
    assert (
        _value("pp_payment_failovers_total", mode="test", from_psp="stripe", reason="error")
        == before["failover"] + 1
    )
    assert (
        _value("pp_psp_requests_total", psp="stripe", operation="authorize", outcome="error")
        == before["stripe_error"] + 1
    )
    assert (
        _value("pp_psp_request_duration_seconds_count", psp="adyen", operation="authorize")
        == before["adyen_latency"] + 1
    )
    assert _value("pp_routing_decision_duration_seconds_count") == before["routing"] + 2
    assert (
        _value("pp_payment_attempts_total", mode="test", psp="adyen", outcome="approved")
        == before["attempts"] + 1
    )
    assert _value("pp_ledger_postings_total", kind="capture", mode="test") == ledger + 1

    # and the page says so, without an id anywhere in a label
    samples = _scrape()
    worst = {s.labels["psp"]: s.value for s in samples["pp_connector_error_ratio_max"]}
    assert worst["stripe"] == 1.0  # its one call failed
    assert worst["adyen"] == 0.0
    ids = {
        PaymentIntent.objects.get().public_id,
        *PaymentAttempt.objects.values_list("public_id", flat=True),
    }
    for sample_list in samples.values():
        for sample in sample_list:
            assert not set(sample.labels.values()) & ids
            assert not any(
                v.startswith(("pi_", "pa_", "conn_", "mer_")) for v in sample.labels.values()
            )


@pytest.mark.django_db
@pytest.mark.usefixtures("connectors")
def test_a_decline_is_counted_with_its_normalized_code(pay):
    before = _value(
        "pp_payments_total",
        mode="test",
        psp="stripe",
        status="requires_payment_method",
        decline_code="lost_card",
    )
    response = pay(number="4000000000009987")  # lost_card, hard: no failover
    assert response.status_code == 402
    after = _value(
        "pp_payments_total",
        mode="test",
        psp="stripe",
        status="requires_payment_method",
        decline_code="lost_card",
    )
    assert after == before + 1


def test_labels_are_bounded():
    assert metrics.bounded("stripe") == "stripe"
    assert metrics.bounded("pi_3MtwBwLkdIwHu7ix28a3tqPa") == "other"
    assert metrics.bounded("Some Free Text!") == "other"
    assert metrics.bounded("pi_abcdefghijklmnop") == "other"
    assert metrics.bounded("soft_decline") == "soft_decline"
    assert metrics.bounded("x" * 41) == "other"
    assert metrics.bounded("") == "none"
    assert metrics.bounded("lost_card", {"lost_card"}) == "lost_card"
    assert metrics.bounded("made_up_code", {"lost_card"}) == "other"


def test_the_hooks_for_disputes_reconciliation_and_risk():
    opened = _value("pp_disputes_total", psp="stripe", event="opened", reason="fraudulent")
    metrics.dispute_opened(psp="stripe", reason="fraudulent")
    metrics.dispute_closed(psp="stripe", won=False, reason="whatever-the-psp-said")
    assert (
        _value("pp_disputes_total", psp="stripe", event="opened", reason="fraudulent") == opened + 1
    )
    assert _value("pp_disputes_total", psp="stripe", event="lost", reason="other") >= 1

    failed = _value("pp_reconciliation_runs_total", psp="adyen", result="failed")
    metrics.reconciliation_run_finished(
        psp="adyen", succeeded=False, discrepancies={"amount_mismatch": 3, "fee_mismatch": 0}
    )
    assert _value("pp_reconciliation_runs_total", psp="adyen", result="failed") == failed + 1
    assert _value("pp_reconciliation_discrepancies_total", psp="adyen", kind="amount_mismatch") >= 3

    metrics.risk_decided(livemode=True, decision="block")
    metrics.risk_decided(livemode=True, decision="maybe")
    assert _value("pp_risk_decisions_total", mode="live", decision="block") >= 1
    assert _value("pp_risk_decisions_total", mode="live", decision="other") >= 1


# --------------------------------------------------------------------------- scrape-time gauges


@pytest.mark.django_db
def test_outbox_lag_and_backlogs_are_computed_at_scrape(merchant):
    samples = _scrape()
    assert samples["pp_outbox_lag_seconds"][0].value == 0
    assert samples["pp_outbox_unrelayed_events"][0].value == 0
    row = OutboxEvent.objects.create(
        merchant_id=merchant.pk,
        livemode=False,
        object_type="payment_intent",
        object_id="pi_test",
        sequence=1,
        event_type="payment_intent.created",
        payload={},
    )
    OutboxEvent.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(seconds=95))
    samples = _scrape()
    assert 94 <= samples["pp_outbox_lag_seconds"][0].value < 120
    assert samples["pp_outbox_unrelayed_events"][0].value == 1
    for name in (
        "pp_inquiry_backlog",
        "pp_intents_needing_review",
        "pp_webhook_deliveries_backlog",
        "pp_psp_webhooks_backlog",
        "pp_celery_queue_length",
        "pp_metrics_scrape_duration_seconds",
    ):
        assert name in samples, name


@pytest.mark.django_db
def test_breaker_states_are_counted_per_psp(connectors):
    samples = _scrape()
    states = {
        (s.labels["psp"], s.labels["state"]): s.value for s in samples["pp_connector_breakers"]
    }
    assert states[("stripe", "closed")] == 1
    assert states[("adyen", "closed")] == 1
    assert states[("stripe", "open")] == 0


@pytest.mark.django_db
def test_a_registered_scrape_gauge_is_exported_and_a_failing_one_is_left_out():
    def due_soon():
        return [
            (
                "pp_disputes_due_soon",
                "Disputes whose evidence is due within 48 h.",
                {"psp": "stripe"},
                2,
            )
        ]

    def broken():
        raise RuntimeError("table missing")

    metrics.register_scrape_gauges(due_soon)
    metrics.register_scrape_gauges(broken)
    try:
        samples = _scrape()
    finally:
        metrics.SCRAPE_GAUGES.remove(due_soon)
        metrics.SCRAPE_GAUGES.remove(broken)
    assert samples["pp_disputes_due_soon"][0].value == 2
    assert samples["pp_disputes_due_soon"][0].labels == {"psp": "stripe"}
    assert "pp_outbox_lag_seconds" in samples
