"""The shared HTTP plumbing: sessions, failure classification, minor units, and keeping card data
and secrets out of logs and reprs."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

import pytest
import requests

from apps.psp_adapters import http
from apps.psp_adapters.adyen import AdyenAdapter
from apps.psp_adapters.contract import ConnectorConfig, Outcome, RetrieveRequest
from apps.psp_adapters.http import Operation, PSPClient, PSPTransportError, minor_units
from apps.psp_adapters.stripe import StripeAdapter
from tests.psp_adapters.conftest import API_KEY, CARD_NUMBER
from tests.psp_adapters.fake_psp import closed_port


def _config(base_url: str, connector_id: str = "mca_1", **overrides) -> ConnectorConfig:
    return ConnectorConfig(
        connector_id=connector_id,
        connector_type="stripe",
        base_url=base_url,
        credentials={"api_key": API_KEY, "merchant_account": "AcmeCOM", "hmac_key": "00" * 32},
        **overrides,
    )


# --- sessions -------------------------------------------------------------------------------------


def test_one_session_per_connector_and_base_url():
    try:
        a = http.session_for(_config("http://psp.test/a"))
        assert http.session_for(_config("http://psp.test/a/")) is a
        assert http.session_for(_config("http://psp.test/b")) is not a
        assert http.session_for(_config("http://psp.test/a", connector_id="mca_2")) is not a
    finally:
        http.close_sessions()


def test_concurrent_first_calls_share_one_session():
    config = _config("http://psp.test/concurrent")
    seen = []
    barrier = threading.Barrier(16)

    def grab():
        barrier.wait()
        seen.append(http.session_for(config))

    threads = [threading.Thread(target=grab) for _ in range(16)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len({id(session) for session in seen}) == 1
    finally:
        http.close_sessions()


def test_sessions_ignore_ambient_proxies_and_netrc():
    try:
        session = http.session_for(_config("http://psp.test/env"))
        assert session.trust_env is False
        assert session.get_adapter("https://psp.test").max_retries.total == 0
    finally:
        http.close_sessions()


def test_timeouts_come_from_the_connector_config(psp):
    psp.reply("GET", "/slow", body={}, delay=0.5)
    client = PSPClient(_config(psp.url, connect_timeout=1.0, read_timeout=0.1), headers={})

    with pytest.raises(PSPTransportError) as raised:
        client.request("GET", "/slow", operation=Operation.CAPTURE, reference="pa_1")

    assert raised.value.result.raw_code == "read_timeout"
    assert raised.value.result.latency_ms >= 100


@pytest.mark.parametrize(
    "method, path, body",
    [
        (
            "POST",
            "/v1/payment_intents",
            {"form": [("amount", "2000"), ("metadata[note]", "Zürich & co"), ("a[0]", "x y")]},
        ),
        ("POST", "/v1/payments", {"json": {"amount": {"value": 2000}, "reference": "pa_ü"}}),
        ("POST", "/v1/payment_intents/pi_1/cancel", {}),
        ("GET", "/v1/payment_intents/pi_1", {}),
        ("GET", "/v1/refunds", {"params": {"payment_intent": "pi_1"}}),
    ],
)
def test_a_call_goes_on_the_wire_as_requests_would_send_it(psp, method, path, body):
    """The client skips requests.Session's per-call preparation; what the PSP receives (method,
    path, query, headers, body) must be what `Session.request` sends."""
    psp.reply(method, path, body={"ok": True})
    headers = {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": "pa_1-0"}
    PSPClient(_config(psp.url), headers=headers).request(
        method, path, operation=Operation.AUTHORIZE, reference="pa_1", **body
    )
    ours = psp.last()
    kwargs = {"data": body.get("form"), "json": body.get("json"), "params": body.get("params")}
    requests.Session().request(method, psp.url + path, headers=headers, **kwargs, timeout=5)
    theirs = psp.last()

    assert ours is not theirs
    assert (ours.method, ours.path, ours.query, ours.body) == (
        theirs.method,
        theirs.path,
        theirs.query,
        theirs.body,
    )
    assert ours.headers == theirs.headers
    assert "transfer-encoding" not in ours.headers  # a sized body, never chunked


def test_a_header_value_with_a_line_break_is_refused_before_anything_is_sent(psp):
    """A credential pasted with a newline: requests' own refusal (InvalidHeader), classified
    as always, and nothing reaches the PSP."""
    client = PSPClient(_config(psp.url), headers={"Authorization": "Bearer sk_1\r\nX-Evil: 1"})
    with pytest.raises(PSPTransportError):
        client.request("POST", "/v1/payment_intents", operation=Operation.AUTHORIZE, reference="p")
    assert psp.received == []


def test_a_redirect_is_answered_not_followed(psp):
    """A 3xx from the PSP (a misconfigured endpoint) comes back as an answer; nothing is sent
    where it points."""
    psp.reply("POST", "/v1/payouts", status=307, headers={"Location": "http://127.0.0.1:9/x"})
    response = PSPClient(_config(psp.url), headers={}).request(
        "POST", "/v1/payouts", operation=Operation.PAYOUT, reference="po_1", form=[("a", "1")]
    )
    assert response.status_code == 307
    assert [r.path for r in psp.received] == ["/v1/payouts"]


# --- classification -------------------------------------------------------------------------------


def test_a_connection_dropped_after_sending_is_unknown(psp):
    psp.reply("POST", "/v1/payment_intents", drop=True)
    client = PSPClient(_config(psp.url), headers={})

    with pytest.raises(PSPTransportError) as raised:
        client.request(
            "POST", "/v1/payment_intents", operation=Operation.AUTHORIZE, reference="pa_1"
        )

    result = raised.value.result
    assert result.outcome is Outcome.UNKNOWN
    assert result.raw_code == "connection_lost"
    assert result.retryable_elsewhere is False


def test_connection_refused_is_an_error_that_sent_nothing():
    client = PSPClient(_config(f"http://127.0.0.1:{closed_port()}"), headers={})

    with pytest.raises(PSPTransportError) as raised:
        client.request("POST", "/v1/refunds", operation=Operation.REFUND, reference="re_1")

    assert raised.value.result.outcome is Outcome.ERROR
    assert raised.value.result.retryable_elsewhere is True


def test_dns_failure_is_an_error_that_sent_nothing():
    # .invalid never resolves (RFC 2606)
    client = PSPClient(_config("http://psp.invalid", connect_timeout=2.0), headers={})

    with pytest.raises(PSPTransportError) as raised:
        client.request("POST", "/v71/payments", operation=Operation.AUTHORIZE, reference="pa_1")

    assert raised.value.result.outcome is Outcome.ERROR
    assert raised.value.result.retryable_elsewhere is True


@pytest.mark.parametrize(
    ("exception", "outcome", "retryable"),
    [
        (requests.ConnectTimeout("connect timed out"), Outcome.ERROR, True),
        (requests.ReadTimeout("read timed out"), Outcome.UNKNOWN, False),
        (requests.ConnectionError("Connection aborted."), Outcome.UNKNOWN, False),
        (requests.exceptions.ChunkedEncodingError("body cut"), Outcome.UNKNOWN, False),
        (requests.exceptions.InvalidURL("bad base url"), Outcome.ERROR, True),
    ],
)
def test_transport_failures_are_classified_by_whether_anything_was_sent(
    exception, outcome, retryable
):
    result = http.transport_failure_result(exception, Operation.AUTHORIZE)

    assert result.outcome is outcome
    assert result.retryable_elsewhere is retryable


def test_an_inquiry_that_could_not_be_sent_leaves_the_payment_unknown():
    result = http.transport_failure_result(requests.ConnectTimeout(), Operation.RETRIEVE)

    assert result.outcome is Outcome.UNKNOWN
    assert result.retryable_elsewhere is False


def test_a_server_error_is_unknown_unless_the_psp_says_it_did_not_process():
    response = http.PSPResponse(status_code=500, headers={}, payload=None, latency_ms=12)

    assert http.server_error_result(response).outcome is Outcome.UNKNOWN
    explicit = http.server_error_result(response, not_processed=True)
    assert explicit.outcome is Outcome.ERROR
    assert explicit.retryable_elsewhere is True


def test_503_service_unavailable_means_not_processed_and_may_fail_over():
    response = http.PSPResponse(status_code=503, headers={}, payload=None, latency_ms=3)

    result = http.server_error_result(response)
    assert result.outcome is Outcome.ERROR
    assert result.retryable_elsewhere is True


def test_a_non_json_body_is_kept_as_no_payload(psp):
    psp.reply("GET", "/html", status=502, body=b"<html>Bad gateway</html>")
    client = PSPClient(_config(psp.url), headers={})

    response = client.request("GET", "/html", operation=Operation.RETRIEVE, reference="pa_1")

    assert response.status_code == 502
    assert response.payload is None


# --- minor units ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("20.00", "eur", 2000),
        ("-5.5", "EUR", -550),
        ("1000", "jpy", 1000),
        ("12.345", "kwd", 12345),
        ("0.370", "KWD", 370),
        ("", "eur", 0),
    ],
)
def test_report_amounts_become_exact_minor_units(amount, currency, minor):
    assert minor_units(amount, currency) == minor


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("1000.5", "jpy"), ("1.2345", "kwd"), ("1,000.00", "usd"), ("NaN", "eur"), ("ten", "eur")],
)
def test_amounts_that_are_not_exact_in_the_currency_are_refused(amount, currency):
    with pytest.raises(ValueError):
        minor_units(amount, currency)


# --- secrets and card data ------------------------------------------------------------------------


def test_card_numbers_and_api_keys_stay_out_of_logs_and_reprs(psp, caplog, authorize_request, card):
    caplog.set_level(logging.DEBUG)  # urllib3 and requests included
    stripe = StripeAdapter(_config(psp.url + "/stripe/acme", read_timeout=0.2))
    adyen = AdyenAdapter(replace(_config(psp.url + "/adyen/acme"), connector_type="adyen"))
    psp.reply("POST", "/stripe/acme/v1/payment_intents", status=402, body={"error": {}})
    psp.reply("POST", "/adyen/acme/v71/payments", status=500, body={})

    results = [
        stripe.authorize(authorize_request),
        adyen.authorize(authorize_request),
        adyen.retrieve(
            RetrieveRequest(attempt_id="pa_1", idempotency_key="k", original=authorize_request)
        ),
    ]
    psp.reply("POST", "/stripe/acme/v1/payment_intents", body={}, delay=1.0)
    results.append(stripe.authorize(authorize_request))  # read timeout, logged as a warning

    assert "pa_1NqA2B3C4D5E6F7G8H9I0J" in caplog.text  # the attempt id is what we log
    reprs = " ".join(
        repr(x) for x in (*results, authorize_request, card, stripe, adyen, stripe._http)
    )
    for secret in (CARD_NUMBER, API_KEY):
        assert secret not in caplog.text
        assert secret not in reprs
    assert "4242" in repr(card)  # last four only
