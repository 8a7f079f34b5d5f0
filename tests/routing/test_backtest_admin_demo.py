"""Backtest (command and admin action), the ops admin (breaker override permission, profile
editor, version re-activation) and the demo profile."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from apps.connectors import health
from apps.connectors import services as connector_services
from apps.core.models import AuditLogEntry
from apps.demo import services as demo_services
from apps.routing.models import RoutingProfile, RoutingProfileVersion
from tests.factories import RoutingProfileFactory, StaffUserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(pay, stripe_connector, adyen_connector, system_actor):
    """Eight approved payments of 20.00: four on Stripe (priority), four on Adyen."""
    for i in range(8):
        if i == 4:
            connector_services.connector_breaker_force(
                connector=stripe_connector, mode="open", actor=system_actor
            )
        assert pay(amount=2000).status_code == 200
    connector_services.connector_breaker_force(
        connector=stripe_connector, mode=None, actor=system_actor
    )


@pytest.fixture
def draft(merchant, stripe_connector, adyen_connector):
    profile = RoutingProfileFactory(
        merchant=merchant,
        name="cheapest",
        fallback=[],
        rules=[
            {
                "name": "cheapest",
                "strategy": {
                    "type": "least_cost",
                    "connectors": [stripe_connector.public_id, adyen_connector.public_id],
                },
            }
        ],
    )
    return profile.versions.get()


def test_backtest_command_predicts_share_fees_and_auth_rate(
    history, draft, stripe_connector, adyen_connector
):
    out = StringIO()
    call_command(
        "routing_backtest",
        "--profile",
        draft.profile.public_id,
        "--since",
        "30d",
        "--json",
        stdout=out,
    )
    report = json.loads(out.getvalue())
    assert report["payments"] == 8
    lines = {line["connector"]: line for line in report["connectors"]}
    stripe, adyen = lines[stripe_connector.public_id], lines[adyen_connector.public_id]
    # what happened: half each; Stripe 0.25 + 1.4 % = 53, Adyen 0.10 + 1.6 % = 42 per payment
    assert (stripe["actual_share"], adyen["actual_share"]) == (0.5, 0.5)
    assert (stripe["actual_fees"], adyen["actual_fees"]) == (4 * 53, 4 * 42)
    # the draft: everything to the cheaper Adyen, at Adyen's observed authorization rate
    assert (stripe["predicted_share"], adyen["predicted_share"]) == (0.0, 1.0)
    assert adyen["expected_auth_rate"] == 1.0
    assert adyen["expected_fees"] == 8 * 42
    assert report["rules_matched"] == {"cheapest": 8}
    text = StringIO()
    call_command(
        "routing_backtest", "--profile", draft.profile.public_id, "--version", "1", stdout=text
    )
    assert f"Backtest of {draft.profile.public_id} v1 on 8 payments" in text.getvalue()


@pytest.fixture
def ops(staff_roles, merchant):
    return StaffUserFactory(username="ops", role="ops", serves=[merchant])


@pytest.fixture
def support(staff_roles, merchant):
    return StaffUserFactory(username="support", role="support", serves=[merchant])


def test_backtest_admin_action_renders_the_report(client, ops, history, draft):
    client.force_login(ops)
    response = client.post(
        "/admin/routing/routingprofileversion/",
        {"action": "backtest_30_days", "_selected_action": [draft.pk]},
    )
    assert response.status_code == 200
    assert b"Routing backtest" in response.content
    assert draft.profile.public_id.encode() in response.content


def test_forcing_a_breaker_needs_the_permission_and_is_audited(
    client, ops, support, stripe_connector
):
    url = "/admin/connectors/connector/"
    client.force_login(support)
    response = client.post(
        url, {"action": "force_breaker_open", "_selected_action": [stripe_connector.pk]}
    )
    assert health.breaker(stripe_connector.public_id).forced() is None
    assert response.status_code in (200, 302, 403)

    client.force_login(ops)
    page = client.get(f"{url}{stripe_connector.pk}/change/")
    assert page.status_code == 200 and b"sk_test_simulator_stripe" not in page.content
    client.post(url, {"action": "force_breaker_open", "_selected_action": [stripe_connector.pk]})
    assert health.breaker(stripe_connector.public_id).forced() == "open"
    client.post(url, {"action": "release_breaker", "_selected_action": [stripe_connector.pk]})
    assert health.breaker(stripe_connector.public_id).forced() is None
    forced = AuditLogEntry.objects.filter(action="connector.breaker_forced").order_by("id")
    assert [e.changes["breaker_forced"] for e in forced] == [[None, "open"], ["open", None]]
    assert {e.actor for e in forced} == {"ops"}


def test_profile_editor_records_a_new_version_and_rejects_bad_rules(
    client, ops, merchant, stripe_connector, adyen_connector
):
    a, b = stripe_connector.public_id, adyen_connector.public_id
    profile = RoutingProfileFactory(
        merchant=merchant,
        name="main",
        fallback=[],
        activate=True,
        rules=[{"name": "all", "strategy": {"type": "priority", "connectors": [a, b]}}],
    )
    client.force_login(ops)
    url = f"/admin/routing/routingprofile/{profile.pk}/change/"
    form = client.get(url)
    assert form.status_code == 200 and a.encode() in form.content
    bad = client.post(
        url,
        {
            "name": "main",
            "rules_json": json.dumps(
                [
                    {
                        "name": "split",
                        "strategy": {
                            "type": "weighted",
                            "weights": [
                                {"connector": a, "weight": 50},
                                {"connector": b, "weight": 0},
                            ],
                        },
                    }
                ]
            ),
            "fallback_json": "[]",
            "versions-TOTAL_FORMS": 0,
            "versions-INITIAL_FORMS": 0,
        },
    )
    assert bad.status_code == 200
    assert b"rules[0][strategy][weights][1][weight]" in bad.content
    assert profile.versions.count() == 1
    good = client.post(
        url,
        {
            "name": "main",
            "rules_json": json.dumps(
                [{"name": "b first", "strategy": {"type": "priority", "connectors": [b, a]}}]
            ),
            "fallback_json": "[]",
            "note": "B first",
            "activate_now": "on",
            "versions-TOTAL_FORMS": 0,
            "versions-INITIAL_FORMS": 0,
        },
    )
    assert good.status_code == 302, good.content[:2000]
    profile.refresh_from_db()
    assert profile.versions.count() == 2 and profile.active_version.number == 2
    # re-activate version 1 from the version list
    v1 = profile.versions.get(number=1)
    client.post(
        "/admin/routing/routingprofileversion/",
        {"action": "activate_version", "_selected_action": [v1.pk]},
    )
    profile.refresh_from_db()
    assert profile.active_version_id == v1.pk


def test_demo_profile_uses_several_strategies_and_is_idempotent(
    merchant, stripe_connector, adyen_connector
):
    profile = demo_services.demo_routing_profile_seed(
        merchant=merchant, connectors=[stripe_connector, adyen_connector]
    )
    assert profile.is_active
    version = RoutingProfileVersion.objects.get(profile=profile)
    strategies = {rule["strategy"]["type"] for rule in version.rules}
    assert strategies == {"least_cost", "success_rate", "lowest_latency", "weighted"}
    again = demo_services.demo_routing_profile_seed(
        merchant=merchant, connectors=[stripe_connector, adyen_connector]
    )
    assert again.pk == profile.pk
    assert RoutingProfile.objects.filter(merchant=merchant).count() == 1


def test_admin_pages_render_for_ops(client, ops, merchant, stripe_connector, adyen_connector):
    demo_services.demo_routing_profile_seed(
        merchant=merchant, connectors=[stripe_connector, adyen_connector]
    )
    client.force_login(ops)
    for url in (
        "/admin/connectors/connector/",
        "/admin/connectors/connector/add/",
        "/admin/routing/routingprofile/",
        "/admin/routing/routingprofile/add/",
        "/admin/routing/routingprofileversion/",
        "/admin/routing/routingsettings/",
        "/admin/routing/routingsettings/add/",
    ):
        assert client.get(url).status_code == 200, url
    listing = client.get("/admin/connectors/connector/").content.decode()
    assert "closed" in listing  # the breaker column
    version = RoutingProfileVersion.objects.get()
    page = client.get(f"/admin/routing/routingprofileversion/{version.pk}/change/")
    assert page.status_code == 200 and b"least_cost" in page.content


def test_connector_admin_creates_through_the_service(client, ops, merchant):
    client.force_login(ops)
    response = client.post(
        "/admin/connectors/connector/add/",
        {
            "merchant": merchant.pk,
            "name": "new-psp",
            "connector_type": "stripe",
            "endpoint": "test",
            "credentials_json": '{"api_key": "sk_test_abcdefgh1234"}',
            "enabled": "on",
            "priority": 5,
            "supported_currencies": '["eur"]',
            "supported_brands": "[]",
            "supported_countries": "[]",
            "fee_schedule": '[{"brand": "*", "fixed": 20, "percent_bps": 150}]',
            "authorization_window_days": 7,
            "settlement_delay_days": 2,
            "connect_timeout_ms": 2000,
            "read_timeout_ms": 10000,
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    created = merchant.connectors.get(name="new-psp")
    assert connector_services.connector_credentials(created) == {"api_key": "sk_test_abcdefgh1234"}
    assert connector_services.connector_endpoint_url(created) == "https://api.stripe.com"
    assert AuditLogEntry.objects.filter(
        action="connector.created", object_id=created.public_id
    ).exists()
    bad = client.post(
        "/admin/connectors/connector/add/",
        {
            "merchant": merchant.pk,
            "name": "bad",
            "connector_type": "stripe",
            "credentials_json": '{"api_key": "x"}',
            "priority": 5,
            "supported_currencies": "[]",
            "supported_brands": "[]",
            "supported_countries": "[]",
            "fee_schedule": "[]",
            "authorization_window_days": 7,
            "settlement_delay_days": 2,
            "connect_timeout_ms": 2000,
            "read_timeout_ms": 10000,
        },
    )
    assert bad.status_code == 200
    assert bad.context["adminform"].form.errors["supported_currencies"]
    assert not merchant.connectors.filter(name="bad").exists()
