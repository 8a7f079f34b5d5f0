"""/v1/webhook_endpoints: CRUD, the secret shown once and rollable, and bad input."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.events.models import WebhookEndpoint
from tests.factories import ApiKeyFactory, WebhookEndpointFactory


@pytest.fixture
def live_api(merchant) -> APIClient:
    merchant.live_enabled = True  # switched on by staff once onboarded
    merchant.save()
    key = ApiKeyFactory(merchant=merchant, livemode=True).raw_key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def create(api, **body):
    body = {"url": "https://hooks.example.com/payments", "enabled_events": ["*"], **body}
    return api.post("/v1/webhook_endpoints", body, format="json")


def test_create_shows_the_secret_once(api):
    response = create(
        api,
        enabled_events=["payment_intent.*", "refund.failed"],
        description="orders",
        metadata={"team": "shop"},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"].startswith("we_")
    assert body["object"] == "webhook_endpoint"
    assert body["secret"].startswith("whsec_")
    assert body["enabled_events"] == ["payment_intent.*", "refund.failed"]
    assert body["status"] == "enabled"
    assert body["livemode"] is False
    retrieved = api.get(f"/v1/webhook_endpoints/{body['id']}").json()
    assert "secret" not in retrieved
    listed = api.get("/v1/webhook_endpoints").json()
    assert [e["id"] for e in listed["data"]] == [body["id"]]
    assert "secret" not in listed["data"][0]
    stored = WebhookEndpoint.objects.get(public_id=body["id"])
    assert body["secret"].encode() not in bytes(stored.secret_encrypted)


def test_test_mode_accepts_http_localhost(api):
    response = create(api, url="http://localhost:8000/hooks")
    assert response.status_code == 200, response.content


def test_update_and_disable_and_enable(api):
    endpoint_id = create(api).json()["id"]
    updated = api.post(
        f"/v1/webhook_endpoints/{endpoint_id}",
        {"enabled_events": ["refund.*"], "disabled": True},
        format="json",
    )
    assert updated.status_code == 200, updated.content
    assert updated.json()["enabled_events"] == ["refund.*"]
    assert updated.json()["status"] == "disabled"
    enabled = api.post(f"/v1/webhook_endpoints/{endpoint_id}", {"disabled": False}, format="json")
    assert enabled.json()["status"] == "enabled"


def test_delete_hides_the_endpoint(api):
    endpoint_id = create(api).json()["id"]
    deleted = api.delete(f"/v1/webhook_endpoints/{endpoint_id}")
    assert deleted.status_code == 200
    assert deleted.json() == {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True}
    assert api.get(f"/v1/webhook_endpoints/{endpoint_id}").status_code == 404
    assert api.get("/v1/webhook_endpoints").json()["data"] == []


def test_roll_secret_returns_a_new_secret(api):
    created = create(api).json()
    rolled = api.post(
        f"/v1/webhook_endpoints/{created['id']}/roll_secret", {"expires_in": 3600}, format="json"
    )
    assert rolled.status_code == 200, rolled.content
    assert rolled.json()["secret"].startswith("whsec_")
    assert rolled.json()["secret"] != created["secret"]
    bad = api.post(
        f"/v1/webhook_endpoints/{created['id']}/roll_secret",
        {"expires_in": 30 * 86400},
        format="json",
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "expires_in"


def test_endpoints_are_scoped_to_the_merchant(api, other_merchant):
    theirs = WebhookEndpointFactory(merchant=other_merchant, url="https://other.example.com/h")
    assert api.get(f"/v1/webhook_endpoints/{theirs.public_id}").status_code == 404
    assert (
        api.post(
            f"/v1/webhook_endpoints/{theirs.public_id}", {"description": "x"}, format="json"
        ).status_code
        == 404
    )


@pytest.mark.parametrize(
    "url, code",
    [
        ("not a url", "url_invalid"),
        ("ftp://hooks.example.com/x", "url_invalid"),
        ("https://", "url_invalid"),
        ("https://user:pw@hooks.example.com/x", "url_invalid"),
        ("https://hooks.example.com:99999/x", "url_invalid"),
        ("", "parameter_missing"),
    ],
)
def test_invalid_urls_are_refused(api, url, code):
    response = create(api, url=url)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["param"] == "url"
    assert WebhookEndpoint.objects.count() == 0


@pytest.mark.parametrize(
    "enabled_events, param",
    [
        (["payment_intent.succeded"], "enabled_events[0]"),
        (["*", "charge.*"], "enabled_events[1]"),
        (["payment_*"], "enabled_events[0]"),
        (["refund.*.x"], "enabled_events[0]"),
    ],
)
def test_unknown_event_types_are_refused(api, enabled_events, param):
    response = create(api, enabled_events=enabled_events)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "event_type_unknown"
    assert error["param"] == param
    assert WebhookEndpoint.objects.count() == 0


@pytest.mark.parametrize(
    "body, param",
    [
        ({"enabled_events": []}, "enabled_events"),
        ({"enabled_events": "payment_intent.succeeded"}, "enabled_events"),
        ({"secret": "whsec_mine"}, "secret"),
    ],
)
def test_malformed_bodies_are_refused(api, body, param):
    response = create(api, **body)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == param


def test_an_update_with_an_unknown_event_type_changes_nothing(api):
    endpoint_id = create(api, enabled_events=["refund.*"]).json()["id"]
    response = api.post(
        f"/v1/webhook_endpoints/{endpoint_id}",
        {"enabled_events": ["refund.exploded"], "description": "new"},
        format="json",
    )
    assert response.status_code == 400
    endpoint = WebhookEndpoint.objects.get(public_id=endpoint_id)
    assert endpoint.enabled_events == ["refund.*"] and endpoint.description == ""


@pytest.mark.parametrize(
    "url, code",
    [
        ("http://hooks.example.com/x", "url_insecure"),
        ("https://localhost/x", "url_not_public"),
        ("https://127.0.0.1:8443/x", "url_not_public"),
        ("https://10.1.2.3/x", "url_not_public"),
        ("https://192.168.0.10/x", "url_not_public"),
        ("https://169.254.169.254/latest/meta-data", "url_not_public"),
        ("https://[::1]/x", "url_not_public"),
        ("https://[::ffff:10.0.0.1]/x", "url_not_public"),
    ],
)
def test_live_mode_refuses_insecure_and_non_public_urls(live_api, url, code):
    response = create(live_api, url=url)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert WebhookEndpoint.objects.count() == 0


def test_live_mode_accepts_a_public_https_url(live_api):
    response = create(live_api, url="https://93.184.215.14/hooks")
    assert response.status_code == 200, response.content
    assert response.json()["livemode"] is True


def test_at_most_sixteen_endpoints_per_mode(api, settings):
    settings.WEBHOOK_ENDPOINTS_MAX_PER_MODE = 2
    assert create(api).status_code == 200
    assert create(api).status_code == 200
    third = create(api)
    assert third.status_code == 400
    assert third.json()["error"]["code"] == "webhook_endpoint_limit_reached"
