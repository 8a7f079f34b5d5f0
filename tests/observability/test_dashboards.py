"""Rollups and the dashboards: what the pages show after real payments, scoped to the staff
user's merchants; bad parameters fall back with a note."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.observability import dashboards
from apps.observability.models import AttemptRollup, LedgerRollup
from apps.observability.rollups import rollups_refresh, rollups_refresh_recent
from tests.factories import StaffUserFactory
from tests.factories.staff import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("connectors")]


@pytest.fixture
def payments(pay, sim, connector_names, django_capture_on_commit_callbacks):
    """Three payments: one approved, one hard decline, one failover (stripe down → adyen)."""
    with django_capture_on_commit_callbacks(execute=True):
        assert pay(amount=4599).status_code == 200
        assert pay(number="4000000000009987").status_code == 402  # lost_card
        sim.faults(connector_names["stripe"], outage=True)
        assert pay(amount=1000).status_code == 200
    rollups_refresh(since=timezone.now() - timedelta(hours=1))


def _query(merchant_ids=None, **params):
    return dashboards.query_from_params(
        {"range": "24h", "granularity": "hour", **params}, merchant_ids=merchant_ids
    )


def test_the_ops_dashboard_counts_intents_attempts_and_failovers(payments, merchant):
    data = dashboards.ops_dashboard(_query())
    totals = data["totals"]
    assert totals["intents"] == 3
    assert totals["attempts"] == 4  # the failover made a second attempt
    assert totals["approved"] == 2
    assert totals["first_approved"] == 1
    assert totals["intent_rate"] == pytest.approx(66.67)
    assert totals["first_attempt_rate"] == pytest.approx(33.33)
    assert totals["attempt_rate"] == 50.0
    assert totals["attempt_rate_no_retries"] == pytest.approx(33.33)
    assert [(r["decline_code"], r["n"]) for r in data["declines"]] == [("lost_card", 1)]
    assert [(r["reason"], r["psp"], r["n"], r["rescued"]) for r in data["failovers"]] == [
        ("error", "adyen", 1, 1)
    ]
    connectors = {
        row["key"].split(" (")[1].rstrip(")"): row for row in data["dimensions"]["connector"]
    }
    assert connectors["adyen"]["approved"] == 1
    assert connectors["stripe"]["attempts"] == 3
    assert {row["psp"] for row in data["latency"]} == {"stripe", "adyen"}
    assert all(row["p95_ms"] for row in data["latency"])


def test_the_finance_dashboard_reads_the_ledger_rollup(payments):
    data = dashboards.finance_dashboard(_query())
    (eur,) = data["totals"]
    assert eur["currency"] == "eur"
    assert eur["volume"] == 4599 + 1000
    # owed to the merchant: the captures less fees, less the refunds (nothing paid out)
    assert eur["merchant_balance"] > 0
    fees = {row["connector"].split(" (")[1].rstrip(")"): row for row in data["fees"]}
    assert fees["stripe"]["amount"] == 4599 and fees["stripe"]["estimated_fees"] > 0
    assert fees["adyen"]["amount"] == 1000


def test_a_refresh_is_idempotent(payments):
    before = (AttemptRollup.objects.count(), LedgerRollup.objects.count())
    rollups_refresh(since=timezone.now() - timedelta(hours=1))
    rollups_refresh_recent()
    assert (AttemptRollup.objects.count(), LedgerRollup.objects.count()) == before
    assert AttemptRollup.objects.filter(period="minute").exists()


def test_staff_see_only_their_merchants(payments, merchant, other_merchant):
    assert dashboards.ops_dashboard(_query({other_merchant.pk}))["totals"]["attempts"] == 0
    assert dashboards.ops_dashboard(_query({merchant.pk}))["totals"]["attempts"] == 4
    # asking for a merchant outside the scope does not widen it
    query = _query({other_merchant.pk}, merchant=str(merchant.pk))
    assert query.merchant_ids == frozenset({other_merchant.pk})
    assert "not in your scope" in query.note


def test_bad_parameters_fall_back_with_a_note():
    query = dashboards.query_from_params(
        {"range": "30d", "granularity": "minute", "mode": "sideways"}, merchant_ids=None
    )
    assert query.granularity == "hour" and "two days" in query.note
    assert not query.livemode
    query = dashboards.query_from_params({"range": "forever"}, merchant_ids=None)
    assert query.range_key == "24h" and "Unknown range" in query.note
    assert dashboards.query_from_params({"range": "1h"}, merchant_ids=None).granularity == "minute"


@pytest.mark.parametrize("kind", ["ops", "finance", "risk"])
def test_the_pages_render_for_scoped_staff(payments, merchant, kind):
    user = StaffUserFactory(role="finance", serves=[merchant])
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    response = client.get(f"/admin/observability/attemptrollup/{kind}/", {"range": "24h"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "vendor/chart.umd.min.js" in body
    assert "cdn" not in body.lower()
    if kind == "finance":
        assert "€55.99" in body  # 45.99 + 10.00, with the currency's exponent and symbol
    if kind == "risk":
        assert merchant.name in body


def test_the_pages_are_for_staff_only(payments):
    response = Client().get("/admin/observability/attemptrollup/ops/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.parametrize("finest", ["minute", "hour", "day"])
@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-11-01T10:17", "2026-12-01T10:18"),
        ("2026-12-01T00:00", "2026-12-03T00:00"),
        ("2026-12-01T10:17", "2026-12-01T10:45"),
        ("2026-12-01T09:59", "2026-12-01T11:01"),
    ],
)
def test_the_coarse_pieces_cover_the_range_exactly_once(start, end, finest):
    from datetime import UTC, datetime

    lo = datetime.fromisoformat(start).replace(tzinfo=UTC)
    hi = datetime.fromisoformat(end).replace(tzinfo=UTC)
    if finest == "day":
        lo = lo.replace(hour=0, minute=0)
    elif finest == "hour":
        lo = lo.replace(minute=0)
    pieces = sorted(dashboards._pieces(lo, hi, finest), key=lambda p: p[1])
    assert pieces[0][1] == lo
    for (_, _, end_a), (_, start_b, _) in itertools.pairwise(pieces):
        assert end_a == start_b  # contiguous, no overlap
    assert pieces[-1][2] <= hi
    step = {"day": timedelta(days=1), "hour": timedelta(hours=1), "minute": timedelta(minutes=1)}
    for period, a, b in pieces:
        # a coarser piece holds whole buckets only; the finest one may end inside a bucket
        # (bucket < end still takes the bucket that starts before the end, as scope_sql does)
        assert period == finest or (b - a) % step[period] == timedelta(0)


def test_the_tables_add_up_to_the_series(payments):
    data = dashboards.ops_dashboard(_query())
    for rows in data["dimensions"].values():
        assert sum(r["attempts"] for r in rows) == data["totals"]["attempts"]


def test_the_risk_dashboard_counts_radar_blocks_and_reviews(api, pay, merchant):
    before = _value_risk("block")
    for action, predicate in (("block", ":amount: = 6666"), ("review", ":amount: = 7777")):
        response = api.post(
            "/v1/radar/rules", {"action": action, "predicate": predicate}, format="json"
        )
        assert response.status_code == 200, response.content
    assert pay(amount=6666).status_code == 402
    assert pay(amount=7777).status_code == 200
    assert _value_risk("block") == before + 1  # pp_risk_decisions_total
    data = dashboards.risk_dashboard(_query({merchant.pk}))
    assert data["risk_installed"]
    assert data["radar"] == [{"merchant": merchant.name, "blocked": 1, "reviewed": 1, "open": 1}]


def _value_risk(decision: str) -> float:
    from prometheus_client import REGISTRY

    return (
        REGISTRY.get_sample_value("pp_risk_decisions_total", {"mode": "test", "decision": decision})
        or 0.0
    )
