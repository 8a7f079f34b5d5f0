"""Where a connector's requests (card numbers, CVCs, PSP credentials) go is the platform's choice,
never a merchant's (issue 11, item 1). A merchant's secret key once could point a connector at its
own listener and receive full card numbers; here every way of naming a URL is refused at creation
and at update, through the API and the admin, in both modes and for both connector types, and a
row tampered with in the database is refused when a call is about to go out. "Nothing sent" is
proved by a real local listener that records every TCP connection it gets: none."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.connectors import endpoints, gateway, services
from apps.connectors.endpoints import EndpointRefused
from apps.connectors.models import Connector
from apps.core.models import AuditLogEntry
from apps.intents.models import PaymentAttempt, PaymentIntent
from tests.factories import (
    ADYEN_LIVE_URL_PREFIX,
    CREDENTIALS,
    ApiKeyFactory,
    ConnectorFactory,
    StaffUserFactory,
)
from tests.support.listener import ConnectionRecorder

LIVE_PREFIX = ADYEN_LIVE_URL_PREFIX
TYPES_AND_MODES = [
    pytest.param("stripe", False, id="stripe-test"),
    pytest.param("stripe", True, id="stripe-live"),
    pytest.param("adyen", False, id="adyen-test"),
    pytest.param("adyen", True, id="adyen-live"),
]


@pytest.fixture
def listener():
    recorder = ConnectionRecorder()
    yield recorder
    recorder.stop()


@pytest.fixture
def live_api(merchant) -> APIClient:
    merchant.live_enabled = True  # switched on by staff once onboarded
    merchant.save(update_fields=["live_enabled"])
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {ApiKeyFactory(merchant=merchant, livemode=True).raw_key}"
    )
    return client


@pytest.fixture
def ops(staff_roles, merchant):
    return StaffUserFactory(role="ops", serves=[merchant])


def _valid(connector_type: str, livemode: bool) -> dict:
    body = {
        "name": f"{connector_type}-{'live' if livemode else 'test'}",
        "connector_type": connector_type,
        "credentials": CREDENTIALS[connector_type],
        "supported_currencies": ["eur"],
    }
    if connector_type == "adyen" and livemode:
        body["live_url_prefix"] = LIVE_PREFIX
    return body


def _exfiltration_attempts(listener: ConnectionRecorder) -> list[tuple[dict, str]]:
    """Every field through which a URL of the caller's could get in, with the param the 400
    must name."""
    host = f"127.0.0.1:{listener.port}"
    return [
        ({"base_url": listener.url}, "base_url"),
        ({"base_url": f"https://{host}/v1"}, "base_url"),
        ({"endpoint": listener.url}, "endpoint"),
        ({"endpoint": "simulator@" + host}, "endpoint"),
        ({"live_url_prefix": f"{host}/x#"}, "live_url_prefix"),
        ({"live_url_prefix": f"evil@{host}?"}, "live_url_prefix"),
        ({"live_url_prefix": "attacker.example"}, "live_url_prefix"),
        ({"simulator_account": "../../steal"}, "simulator_account"),
    ]


def _row(connector: Connector) -> tuple:
    connector.refresh_from_db()
    return (connector.endpoint, connector.live_url_prefix, connector.simulator_account)


# --------------------------------------------------------------------------- the merchant API


@pytest.mark.parametrize(("connector_type", "livemode"), TYPES_AND_MODES)
def test_the_api_refuses_every_way_to_name_where_card_data_goes_at_creation(
    api, live_api, listener, connector_type, livemode
):
    client = live_api if livemode else api
    for attempt, param in _exfiltration_attempts(listener):
        response = client.post(
            "/v1/connectors", {**_valid(connector_type, livemode), **attempt}, format="json"
        )
        assert response.status_code == 400, (attempt, response.content)
        error = response.json()["error"]
        assert (error["type"], error["param"]) == ("invalid_request_error", param), attempt
        if param == "base_url":
            assert "platform" in error["message"] and "endpoint" in error["message"]
    assert not Connector.objects.exists()
    listener.assert_nothing_received()


@pytest.mark.parametrize(("connector_type", "livemode"), TYPES_AND_MODES)
def test_the_api_refuses_every_way_to_name_where_card_data_goes_at_update(
    api, live_api, listener, merchant, platform_simulator, connector_type, livemode
):
    connector = ConnectorFactory(
        merchant=merchant, livemode=livemode, connector_type=connector_type
    )
    assert connector.endpoint == ("production" if livemode else "simulator")
    before = _row(connector)
    client = live_api if livemode else api
    for attempt, param in _exfiltration_attempts(listener):
        response = client.post(f"/v1/connectors/{connector.public_id}", attempt, format="json")
        assert response.status_code == 400, (attempt, response.content)
        assert response.json()["error"]["param"] == param, attempt
        assert _row(connector) == before
    # the live endpoint cannot be swapped for the simulator (or the reverse) either
    other = "simulator" if livemode else "production"
    response = client.post(
        f"/v1/connectors/{connector.public_id}", {"endpoint": other}, format="json"
    )
    assert (response.status_code, response.json()["error"]["param"]) == (400, "endpoint")
    assert _row(connector) == before
    listener.assert_nothing_received()


@pytest.mark.parametrize("connector_type", ["stripe", "adyen"])
def test_after_refused_updates_a_payment_still_goes_only_to_the_platforms_endpoint(
    api, pay, sim, listener, merchant, platform_simulator, connector_type
):
    connector = ConnectorFactory(
        merchant=merchant, connector_type=connector_type, supported_currencies=["eur"]
    )
    for attempt, _ in _exfiltration_attempts(listener):
        api.post(f"/v1/connectors/{connector.public_id}", attempt, format="json")
    body = pay().json()
    assert body["status"] == "succeeded", body
    assert len(sim.charges(connector.public_id)) == 1  # its own simulated account
    listener.assert_nothing_received()


def test_the_connector_shows_where_its_requests_go(live_api, listener):
    body = live_api.post("/v1/connectors", _valid("adyen", True), format="json").json()
    assert body["endpoint"] == "production"
    assert body["live_url_prefix"] == LIVE_PREFIX
    assert body["endpoint_url"] == (
        f"https://{LIVE_PREFIX}-checkout-live.adyenpayments.com/checkout"
    )
    assert "base_url" not in body
    missing = live_api.post(
        "/v1/connectors", {**_valid("adyen", True), "live_url_prefix": ""}, format="json"
    )
    assert (missing.status_code, missing.json()["error"]["param"]) == (400, "live_url_prefix")
    listener.assert_nothing_received()


# --------------------------------------------------------------------------- the admin


def _admin_form(merchant, connector_type: str, livemode: bool, **fields) -> dict:
    form = {
        "merchant": merchant.pk,
        "name": f"admin-{connector_type}",
        "connector_type": connector_type,
        "credentials_json": '{"api_key": "sk_test_abcdefgh1234"}',
        "enabled": "on",
        "priority": 5,
        "supported_currencies": '["eur"]',
        "supported_brands": "[]",
        "supported_countries": "[]",
        "fee_schedule": "[]",
        "authorization_window_days": 7,
        "settlement_delay_days": 2,
        "connect_timeout_ms": 2000,
        "read_timeout_ms": 10000,
        **fields,
    }
    if livemode:
        form["livemode"] = "on"
    return form


@pytest.mark.parametrize(("connector_type", "livemode"), TYPES_AND_MODES)
def test_the_admin_offers_only_the_platforms_endpoints_never_a_url(
    client, ops, merchant, listener, platform_simulator, connector_type, livemode
):
    client.force_login(ops)
    add = client.get("/admin/connectors/connector/add/")
    form = add.context["adminform"].form
    assert "base_url" not in form.fields
    assert {value for value, _ in form.fields["endpoint"].choices} <= {
        "",
        "production",
        "test",
        "simulator",
    }
    prefix = {"live_url_prefix": LIVE_PREFIX} if connector_type == "adyen" and livemode else {}
    for field, value in (
        ("endpoint", listener.url),
        ("endpoint", "simulator" if livemode else "production"),  # not for this mode
        ("live_url_prefix", f"127.0.0.1:{listener.port}/x#"),
        ("live_url_prefix", "attacker.example"),
    ):
        response = client.post(
            "/admin/connectors/connector/add/",
            _admin_form(merchant, connector_type, livemode, **{**prefix, field: value}),
        )
        assert response.status_code == 200, (field, value)
        assert response.context["adminform"].form.errors[field], (field, value)
    assert not Connector.objects.exists()

    # the mode's default endpoint (test mode: the PSP's test host)
    connector = ConnectorFactory(
        merchant=merchant, livemode=livemode, connector_type=connector_type, endpoint=None
    )
    before = _row(connector)
    page = client.get(f"/admin/connectors/connector/{connector.pk}/change/")
    choices = {v for v, _ in page.context["adminform"].form.fields["endpoint"].choices} - {""}
    assert choices == set(endpoints.allowed(connector_type, livemode))
    for field, value in (
        ("endpoint", listener.url),
        ("live_url_prefix", f"127.0.0.1:{listener.port}/x#"),
    ):
        response = client.post(
            f"/admin/connectors/connector/{connector.pk}/change/",
            _admin_form(
                merchant,
                connector_type,
                livemode,
                **{
                    "name": connector.name,
                    "endpoint": connector.endpoint,
                    "credentials_json": "",
                    **prefix,
                    field: value,
                },
            ),
        )
        assert response.status_code == 200, (field, value)
        assert response.context["adminform"].form.errors[field], (field, value)
        assert _row(connector) == before
    listener.assert_nothing_received()


# --------------------------------------------------------------------------- at call time


def _tamper(connector: Connector, **fields) -> Connector:
    """A row changed behind the services' back (SQL, an old bug, a restore)."""
    Connector.objects.filter(pk=connector.pk).update(**fields)
    connector.refresh_from_db()
    return connector


def _tamperings(listener: ConnectionRecorder) -> list[dict]:
    return [
        # the column holds 20 characters: enough for these
        {"endpoint": f"127.0.0.1:{listener.port}"},
        {"endpoint": f"//127.0.0.1:{listener.port}"},
        {"endpoint": "production"},  # a live endpoint on a test-mode connector
        {"simulator_account": f"x@127.0.0.1:{listener.port}"},
        {"simulator_account": "../../x"},
        {"live_url_prefix": f"127.0.0.1:{listener.port}/x#"},
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("connector_type", ["stripe", "adyen"])
def test_a_tampered_connector_is_refused_when_the_payment_goes_out_and_nothing_is_sent(
    api, pay, sim, listener, connector_names, connector_type, request
):
    connector = request.getfixturevalue(f"{connector_type}_connector")
    account = connector_names[connector_type]
    for tampering in _tamperings(listener):
        _tamper(connector, endpoint="simulator", simulator_account=account, live_url_prefix="")
        _tamper(connector, **tampering)
        response = pay()
        body = response.json()
        intent = body.get("error", {}).get("payment_intent") or body
        assert intent["status"] == "requires_payment_method", (tampering, body)
        # the connector's setup failed, not the card: never "your card was declined"
        assert (response.status_code, body["error"]["type"], body["error"]["code"]) == (
            502,
            "api_error",
            "connector_configuration_invalid",
        )
        attempt = PaymentAttempt.objects.filter(intent__public_id=intent["id"]).get()
        assert (attempt.outcome, attempt.raw_code) == ("error", "connector_endpoint_refused")
        assert "nothing was sent" in attempt.raw_message
        # and it shows: the API reads the row without a 500, with no URL for it
        shown = api.get(f"/v1/connectors/{connector.public_id}")
        assert shown.status_code == 200 and shown.json()["endpoint_url"] is None
    assert sim.charges(account) == []
    listener.assert_nothing_received()


@pytest.mark.django_db(transaction=True)
def test_a_payment_fails_over_from_a_tampered_connector_to_a_good_one(
    api, pay, sim, listener, connectors, connector_names, stripe_connector
):
    _tamper(stripe_connector, endpoint=f"//127.0.0.1:{listener.port}")
    body = pay().json()
    assert body["status"] == "succeeded", body
    intent = api.get(f"/v1/payment_intents/{body['id']}", {"expand[]": "attempts"}).json()
    assert [(a["connector"], a["outcome"], a["raw_code"]) for a in intent["attempts"]] == [
        (stripe_connector.public_id, "error", "connector_endpoint_refused"),
        (connectors[1].public_id, "approved", "Authorised"),
    ]
    assert sim.charges(connector_names["stripe"]) == []
    assert len(sim.charges(connector_names["adyen"])) == 1
    listener.assert_nothing_received()


def test_capture_and_cancel_on_a_tampered_connector_send_nothing_and_leave_the_intent_movable(
    api, pay, sim, listener, stripe_connector, connector_names
):
    body = pay(capture_method="manual").json()
    assert body["status"] == "requires_capture"
    _tamper(stripe_connector, simulator_account=f"x@127.0.0.1:{listener.port}")
    for action in ("capture", "cancel"):
        response = api.post(f"/v1/payment_intents/{body['id']}/{action}", {}, format="json")
        assert response.status_code == 502, response.content
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("api_error", "connector_endpoint_refused")
        intent = PaymentIntent.objects.get(public_id=body["id"])
        assert (intent.status, intent.pending_operation) == ("requires_capture", "")
    # fixed by ops: the same intent captures normally
    _tamper(stripe_connector, simulator_account=connector_names["stripe"])
    captured = api.post(f"/v1/payment_intents/{body['id']}/capture", {}, format="json")
    assert captured.json()["status"] == "succeeded"
    listener.assert_nothing_received()


@pytest.mark.parametrize(
    ("connector_type", "tampering"),
    [
        ("stripe", {"endpoint": "simulator"}),  # the simulator is never a live endpoint
        ("stripe", {"endpoint": "//127.0.0.1:{port}"}),
        ("adyen", {"live_url_prefix": "127.0.0.1:{port}/x#"}),
        ("adyen", {"live_url_prefix": "x.127.0.0.1.nip.io:{port}"}),
        ("adyen", {"live_url_prefix": ""}),
    ],
)
def test_a_tampered_live_connector_is_refused_at_call_time(
    merchant, listener, platform_simulator, connector_type, tampering
):
    connector = ConnectorFactory(merchant=merchant, livemode=True, connector_type=connector_type)
    _tamper(connector, **{k: v.format(port=listener.port) for k, v in tampering.items()})
    with pytest.raises(EndpointRefused) as refused:
        services.connector_config(connector)
    assert (refused.value.http_status, refused.value.code) == (502, "connector_endpoint_refused")
    result = gateway.call(
        connector,
        gateway.Operation.AUTHORIZE,
        lambda adapter: pytest.fail("the call went out"),
        reference="pa_test",
        facts={},
    )
    assert (result.outcome, result.raw_code, result.retryable_elsewhere) == (
        "error",
        "connector_endpoint_refused",
        True,
    )
    assert services.connector_probe(connector=connector) is False
    listener.assert_nothing_received()


def test_a_simulator_connector_is_refused_once_the_platform_has_no_simulator(
    stripe_connector, settings, listener
):
    settings.SIMULATOR_URL = ""  # production: no simulator configured
    with pytest.raises(EndpointRefused):
        services.connector_config(stripe_connector)
    settings.SIMULATOR_URL = listener.url  # the platform's own choice: allowed again
    assert services.connector_endpoint_url(stripe_connector).startswith(listener.url)


# --------------------------------------------------------------------------- the allow-list


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        "a.b",
        "evil.example#",
        "x:443",
        "user@x",
        "-x",
        "x-",
        "x/y",
        "x y",
        "x\\y",
        "ｅvil",
        "a" * (endpoints.LIVE_URL_PREFIX_MAX_LENGTH + 1),
    ],
)
def test_only_a_single_dns_label_is_a_live_url_prefix(prefix):
    with pytest.raises(EndpointRefused) as refused:
        endpoints.resolve(
            connector_type="adyen", livemode=True, endpoint="production", live_url_prefix=prefix
        )
    assert refused.value.param == "live_url_prefix"


def test_the_documented_hosts(settings):
    settings.SIMULATOR_URL = "http://127.0.0.1:8090"
    assert endpoints.allowed("stripe", True) == {"production": "https://api.stripe.com"}
    assert endpoints.resolve(connector_type="stripe", livemode=False, endpoint="test") == (
        "https://api.stripe.com"
    )
    assert endpoints.resolve(connector_type="adyen", livemode=False, endpoint="test") == (
        "https://checkout-test.adyen.com"
    )
    assert endpoints.resolve(
        connector_type="adyen", livemode=True, endpoint="production", live_url_prefix=LIVE_PREFIX
    ) == (f"https://{LIVE_PREFIX}-checkout-live.adyenpayments.com/checkout")
    assert endpoints.resolve(
        connector_type="adyen", livemode=False, endpoint="simulator", simulator_account="a-1"
    ) == ("http://127.0.0.1:8090/adyen/a-1")
    assert "simulator" not in endpoints.allowed("adyen", True)
    assert endpoints.default("stripe", True) == "production"
    assert endpoints.default("adyen", False) == "test"


def test_a_live_endpoint_configured_without_https_is_refused(settings):
    settings.PSP_ENDPOINTS = {"stripe": {"live": {"production": "http://api.stripe.com"}}}
    with pytest.raises(EndpointRefused, match="https"):
        endpoints.resolve(connector_type="stripe", livemode=True, endpoint="production")


def test_refused_rows_and_endpoint_changes_are_audited(api, merchant, system_actor):
    created = api.post("/v1/connectors", _valid("stripe", False), format="json").json()
    connector = Connector.objects.get(public_id=created["id"])
    services.connector_update(connector=connector, actor=system_actor, endpoint="simulator")
    entry = AuditLogEntry.objects.filter(action="connector.updated").get()
    assert entry.changes["endpoint"] == ["test", "simulator"]
    assert entry.changes["simulator_account"] == ["", connector.public_id]


def test_manage_py_check_catches_a_misconfigured_endpoint(settings):
    from apps.connectors.checks import psp_endpoints_check

    assert psp_endpoints_check(None) == []  # the shipped configuration
    settings.PSP_ENDPOINTS = {
        "stripe": {"live": {"production": "http://api.stripe.com"}},
        "adyen": {"test": {"simulator": "http://x", "test": "https://u:p@checkout-test.adyen.com"}},
    }
    settings.SIMULATOR_URL = "ftp://127.0.0.1:8090"
    assert [e.id for e in psp_endpoints_check(None)] == [
        "connectors.E003",
        "connectors.E002",
        "connectors.E003",
        "connectors.E004",
    ]
