"""Every non-success /v1/ response is the one envelope, with a request id, never a stack trace."""

import json
import logging

import pytest

from apps.merchants import services as merchant_services

ENVELOPE_KEYS = {"type", "code", "message", "param", "request_id"}


def assert_envelope(response, status, code, param=None, error_type="invalid_request_error"):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = json.loads(response.content)
    assert set(body["error"]) >= ENVELOPE_KEYS
    assert body["error"]["code"] == code
    assert body["error"]["type"] == error_type
    assert body["error"]["param"] == param
    assert body["error"]["request_id"] == response["Request-Id"]
    assert "Traceback" not in response.content.decode()
    return body["error"]


def test_unknown_url_is_a_404_envelope(api):
    assert_envelope(api.get("/v1/no_such_thing"), 404, "resource_missing")


def test_wrong_method_is_a_405_envelope(api):
    response = api.delete("/v1/account")
    assert_envelope(response, 405, "method_not_allowed")
    assert "POST" in response["Allow"]


def test_malformed_json_is_a_400(api):
    response = api.generic("POST", "/v1/account", "{not json", content_type="application/json")
    assert_envelope(response, 400, "body_malformed_json")


def test_wrong_content_type_is_a_415(api):
    response = api.generic(
        "POST", "/v1/account", "name=x", content_type="application/x-www-form-urlencoded"
    )
    assert_envelope(response, 415, "unsupported_media_type")


def test_body_over_one_mebibyte_is_a_413(api, merchant):
    payload = json.dumps({"name": "x" * (1024 * 1024)})
    response = api.generic("POST", "/v1/account", payload, content_type="application/json")
    assert_envelope(response, 413, "request_too_large")
    merchant.refresh_from_db()
    assert merchant.name == "Test Shop"


def test_body_that_is_not_an_object_is_a_400(api):
    response = api.generic("POST", "/v1/account", "[1, 2]", content_type="application/json")
    assert_envelope(response, 400, "parameter_invalid")


def test_unknown_parameter_names_the_param(api):
    assert_envelope(
        api.post("/v1/account", {"nmae": "x"}, format="json"),
        400,
        "parameter_unknown",
        param="nmae",
    )


def test_wrong_type_names_the_param(api):
    assert_envelope(
        api.post("/v1/account", {"metadata": "not-a-dict"}, format="json"),
        400,
        "parameter_invalid_type",
        param="metadata",
    )


def test_nested_validation_error_names_the_nested_param(api):
    response = api.post("/v1/account", {"metadata": {"k": "v" * 501}}, format="json")
    assert_envelope(response, 400, "parameter_max_length", param="metadata[k]")


def test_unhandled_exception_is_a_500_envelope_without_details(api, monkeypatch, caplog):
    pan, secret = "4242" * 4, "sk_test_" + "leak"

    def explode(**kwargs):
        raise RuntimeError(f"card {pan} secret {secret}")

    monkeypatch.setattr(merchant_services, "merchant_update", explode)
    with caplog.at_level(logging.DEBUG):
        response = api.post("/v1/account", {"name": "x"}, format="json")
    error = assert_envelope(response, 500, "internal_error", error_type="api_error")
    assert "4242" not in response.content.decode()
    assert "sk_test_leak" not in response.content.decode()
    assert error["request_id"].startswith("req_")
    # the log line carries the request id and the type, never the exception text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError" in logged
    assert "4242424242424242" not in logged
    assert "sk_test_leak" not in caplog.text
    assert "4242424242424242" not in caplog.text


def test_every_response_carries_a_request_id(api, anon_api):
    ok = api.get("/v1/account")
    failed = anon_api.get("/v1/account")
    assert ok["Request-Id"].startswith("req_")
    assert failed["Request-Id"].startswith("req_")
    assert ok["Request-Id"] != failed["Request-Id"]


@pytest.mark.django_db
def test_health_endpoints(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgresql": "ok", "redis": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_readyz_names_the_dependency_that_failed(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["broker"].startswith("unavailable")
    assert ready.json()["checks"]["postgresql"] == "ok"


def test_log_formatter_masks_card_numbers_and_secret_keys():
    import logging as std_logging

    from apps.core.logging import RedactingFormatter

    record = std_logging.LogRecord(
        "x",
        std_logging.INFO,
        __file__,
        1,
        "pan %s key %s order %s",
        ("4242424242424242", "sk_test_abcdefghijkl", "1234567890123"),
        None,
    )
    line = RedactingFormatter("%(message)s").format(record)
    assert "4242424242424242" not in line and "abcdefghijkl" not in line
    assert "order 1234567890123" in line  # not Luhn-valid: an order number stays readable


def test_unknown_url_is_a_404_envelope_with_debug_on_too(api, settings):
    # `make run` runs with DEBUG=1, where Django would answer unknown URLs with its HTML page
    settings.DEBUG = True
    assert_envelope(api.get("/v1/no_such_thing"), 404, "resource_missing")
    assert_envelope(
        api.post("/v1/payment_intents/x/y/z", {}, format="json"), 404, "resource_missing"
    )
