"""Inputs that used to answer 500: each is now a 4xx in the error envelope with a precise code
and param (or, for a database that is away, a 503 with Retry-After)."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from apps.events.models import WebhookEndpoint
from apps.merchants import services as merchant_services
from apps.merchants.models import Merchant
from tests.factories import RoutingProfileFactory, WebhookEndpointFactory
from tests.intents.conftest import (  # noqa: F401  (fixtures)
    connector_names,
    platform_simulator,
    simulator_url,
    stripe_connector,
)

CREATED_LISTS = {
    "/v1/events": ["created_gt", "created_gte", "created_lt", "created_lte"],
    "/v1/payment_intents": ["created_gte", "created_lte"],
    "/v1/payouts": ["created_gte", "created_lte"],
    "/v1/balance_transactions": ["created_gte", "created_lt"],
}


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert {"type", "code", "message", "param", "request_id"} <= set(body["error"])
    return body["error"]


@pytest.fixture
def api(api):
    api.raise_request_exception = False  # a 500 is an answer to assert on, not a test crash
    return api


def _created_cases():
    for url, names in CREATED_LISTS.items():
        for name in names:
            op = name.split("_")[1]
            for spelled in (name, f"created[{op}]"):
                yield url, spelled


@pytest.mark.parametrize(("url", "param"), list(_created_cases()))
@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("253402300800", "parameter_max_value"),  # year 10000: fromtimestamp overflowed
        ("99999999999999999999999", "parameter_max_value"),
        ("-1", "parameter_min_value"),
        ("1.5", "parameter_invalid"),
        ("1e3", "parameter_invalid"),
        ("abc", "parameter_invalid"),
        ("", "parameter_invalid"),
        ("9" * 2000, "parameter_max_string_length"),
    ],
)
def test_created_filters_out_of_range_or_malformed(api, url, param, value, code):
    error = _error(api.get(url, {param: value}), 400)
    assert error["code"] == code
    assert error["param"] == param


@pytest.mark.parametrize("url", list(CREATED_LISTS))
def test_created_filters_at_the_edges_of_the_range_are_accepted(api, url):
    for name in CREATED_LISTS[url]:
        for value in ("0", "253402300799"):
            response = api.get(url, {name: value})
            assert response.status_code == 200, (name, value, response.content)


def test_webhook_replay_since_out_of_range(api):
    endpoint = api.post(
        "/v1/webhook_endpoints",
        {"url": "https://example.com/hook", "enabled_events": ["*"]},
        format="json",
    ).json()
    error = _error(
        api.post(
            f"/v1/webhook_endpoints/{endpoint['id']}/replay",
            {"since": 253402300800},
            format="json",
        ),
        400,
    )
    assert (error["code"], error["param"]) == ("parameter_max_value", "since")


# --------------------------------------------------------------------------- cursors


@pytest.fixture
def profile(merchant, stripe_connector):  # noqa: F811
    return RoutingProfileFactory(merchant=merchant, connectors=[stripe_connector])


@pytest.mark.parametrize(
    ("param", "value", "code"),
    [
        ("starting_after", "abc", "parameter_invalid"),
        ("starting_after", "-1", "parameter_invalid"),
        ("starting_after", "1.0", "parameter_invalid"),
        ("starting_after", "99999999999999999999", "parameter_invalid"),
        ("starting_after", "\u0661", "parameter_invalid"),  # an Arabic-Indic digit
        ("ending_before", "0", "resource_missing"),
        ("ending_before", "7", "resource_missing"),
    ],
)
def test_routing_profile_version_cursors(api, profile, param, value, code):
    error = _error(
        api.get(f"/v1/routing_profiles/{profile.public_id}/versions", {param: value}), 400
    )
    assert (error["code"], error["param"]) == (code, param)


def test_routing_profile_version_cursor_that_exists(api, profile):
    response = api.get(f"/v1/routing_profiles/{profile.public_id}/versions", {"ending_before": "1"})
    assert response.status_code == 200, response.content


LISTS = [
    "/v1/api_keys",
    "/v1/sellers",
    "/v1/connectors",
    "/v1/routing_profiles",
    "/v1/events",
    "/v1/webhook_endpoints",
    "/v1/payment_intents",
    "/v1/refunds",
    "/v1/payouts",
    "/v1/balance_transactions",
]


@pytest.fixture
def other_merchants_endpoint(other_merchant):
    return WebhookEndpointFactory(merchant=other_merchant, url="https://example.com/other")


@pytest.mark.parametrize("url", LISTS)
@pytest.mark.parametrize("param", ["starting_after", "ending_before"])
@pytest.mark.parametrize(
    ("value", "status", "code"),
    [
        ("pi_doesnotexist", 400, "resource_missing"),
        ("xx_wrongprefix", 400, "resource_missing"),
        ("OTHER", 400, "resource_missing"),  # another merchant's object
        ("a\u0000b", 400, "parameter_invalid_character"),
        ("a\u0001\u001fb", 400, "resource_missing"),
        ("x" * 81, 400, "parameter_max_length"),
        ("", 400, "parameter_missing"),
    ],
)
def test_list_cursors(api, other_merchants_endpoint, url, param, value, status, code):
    if value == "OTHER":
        value = other_merchants_endpoint.public_id
    error = _error(api.get(url, {param: value}), status)
    assert (error["code"], error["param"]) == (code, param)


@pytest.mark.parametrize("url", LISTS)
@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("0", "parameter_min_value"),
        ("101", "parameter_max_value"),
        ("-1", "parameter_min_value"),
        ("1e3", "parameter_invalid"),
        ("abc", "parameter_invalid"),
        ("1.5", "parameter_invalid"),
    ],
)
def test_list_limit(api, url, value, code):
    error = _error(api.get(url, {"limit": value}), 400)
    assert (error["code"], error["param"]) == (code, "limit")


# --------------------------------------------------------------------------- NUL characters


@pytest.mark.parametrize(
    ("method", "url", "body", "param"),
    [
        ("post", "/v1/account", {"metadata": {"a\u0000": "x"}}, "metadata"),
        ("post", "/v1/account", {"metadata": {"a": "x\u0000"}}, "metadata[a]"),
        ("post", "/v1/account", {"name": "Shop\u0000"}, "name"),
        (
            "post",
            "/v1/webhook_endpoints",
            {"url": "https://e.com/h", "enabled_events": ["*"], "metadata": {"\u0000": "1"}},
            "metadata",
        ),
        (
            "post",
            "/v1/payment_intents",
            {"amount": 100, "currency": "eur", "metadata": {"k\u0000": "v"}},
            "metadata",
        ),
        ("post", "/v1/payment_intents", {"amount": 100, "currency": "e\u0000r"}, "currency"),
        (
            "post",
            "/v1/connectors",
            {"name": "c", "credentials": {"api_key\u0000": "x"}},
            "credentials",
        ),
        ("post", "/v1/routing_profiles", {"name": "p", "rules": [{"\u0000": 1}]}, "rules[0]"),
        ("post", "/v1/account", {"\u0000": 1}, None),
        ("post", "/v1/account", {"metadata": {"lone": "\ud800"}}, "metadata[lone]"),
    ],
)
def test_nul_and_lone_surrogates_in_bodies_are_refused(api, method, url, body, param):
    before = Merchant.objects.values_list("name", "metadata").get()
    # json.dumps writes them as the escapes \u0000 and \ud800, as a JSON client would
    response = getattr(api, method)(url, json.dumps(body), content_type="application/json")
    error = _error(response, 400)
    assert (error["code"], error["param"]) == ("parameter_invalid_character", param)
    assert Merchant.objects.values_list("name", "metadata").get() == before
    assert WebhookEndpoint.objects.count() == 0


@pytest.mark.parametrize(
    "path",
    [
        "/v1/payment_intents/pi_%00",
        "/v1/payment_intents/%00/capture",
        "/v1/payment_intents/pi_%01%1F",
        "/v1/payment_methods/pm_%00",
        "/v1/refunds/re_%00",
        "/v1/events/evt_%00",
        "/v1/connectors/%00",
        "/v1/routing_profiles/%00",
        "/v1/routing_profiles/%00/versions",
        "/v1/routing_profiles/rp_x/versions/99999999999999999999",
        "/v1/sellers/%00",
        "/v1/payouts/%00",
        "/v1/webhook_endpoints/%00",
        "/v1/webhook_endpoints/%00/deliveries",
        "/v1/api_keys/%00/revoke",
    ],
)
def test_control_characters_in_path_ids_are_not_found(api, path):
    method = api.post if path.endswith(("capture", "revoke")) else api.get
    error = _error(method(path, format="json"), 404)
    assert (error["code"], error["param"]) == ("resource_missing", "id")


def test_control_characters_in_unauthenticated_path_ids(anon_api):
    anon_api.raise_request_exception = False
    response = anon_api.get("/v1/payment_intents/pi_%00/return")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "resource_missing"
    response = anon_api.post("/webhooks/psp/%00", b"{}", content_type="application/json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "resource_missing"


# --------------------------------------------------------------------------- nesting depth


def _nested(depth: int) -> str:
    return '{"metadata": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize("depth", [33, 1000, 100_000])
def test_deeply_nested_json_is_refused_at_parse_time(api, depth):
    response = api.post("/v1/account", _nested(depth), content_type="application/json")
    error = _error(response, 400)
    assert (error["code"], error["param"]) == ("body_too_deep", None)


def test_deeply_nested_json_on_the_publishable_key_cross_origin_endpoint(publishable_key):
    client = APIClient()
    client.raise_request_exception = False
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {publishable_key}")
    response = client.post(
        "/v1/payment_methods",
        '{"type": "card", "card": ' + "[" * 1000 + "]" * 1000 + "}",
        content_type="application/json",
        HTTP_ORIGIN="https://shop.example",
    )
    error = _error(response, 400)
    assert error["code"] == "body_too_deep"
    assert response["Access-Control-Allow-Origin"] == "*"


def test_nesting_up_to_the_limit_is_parsed(api):
    # 32 levels: the body object and 31 nested arrays reach the serializer, which refuses the type
    body = '{"metadata": ' + "[" * 31 + "]" * 31 + "}"
    error = _error(api.post("/v1/account", body, content_type="application/json"), 400)
    assert error["param"] == "metadata"
    assert error["code"] != "body_too_deep"


def test_brackets_inside_strings_do_not_count(api):
    response = api.post(
        "/v1/account",
        json.dumps({"name": "[" * 5000 + "{" * 5000}),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "name"  # too long, not too deep


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(api, literal):
    response = api.post(
        "/v1/payment_intents",
        f'{{"amount": {literal}, "currency": "eur"}}',
        content_type="application/json",
    )
    assert _error(response, 400)["code"] == "body_malformed_json"


def test_a_hostile_string_body_parses_in_linear_time(api):
    # a naive regex over string literals would take minutes on this (quadratic backtracking)
    body = '{"name": "' + '\\"' * 300_000
    error = _error(api.post("/v1/account", body, content_type="application/json"), 400)
    assert error["code"] == "body_malformed_json"


def test_merchant_rows_untouched_by_refusals(api, merchant):
    api.post("/v1/account", _nested(1000), content_type="application/json")
    merchant.refresh_from_db()
    assert merchant.name == "Test Shop"
    assert Merchant.objects.count() == 1
    assert merchant_services  # the fixture's service created it; nothing else did
