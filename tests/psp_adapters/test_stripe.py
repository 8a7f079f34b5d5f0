"""StripeAdapter against a local HTTP server answering with fixtures from Stripe's API reference."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace

import pytest

from apps.psp_adapters.contract import (
    CancelRequest,
    CaptureRequest,
    ConnectorConfig,
    Outcome,
    RefundRequest,
    RetrieveRequest,
    SettlementLine,
    WebhookVerificationError,
)
from apps.psp_adapters.registry import get_adapter
from apps.psp_adapters.stripe import (
    STRIPE_API_VERSION,
    WEBHOOK_TOLERANCE_SECONDS,
    StripeAdapter,
    encode_form,
)
from tests.psp_adapters.conftest import API_KEY
from tests.psp_adapters.fake_psp import FIXTURES, fixture_bytes, load_fixture

PREFIX = "/stripe/acme"
PI = "pi_3MtwBwLkdIwHu7ix28a3tqPa"
ATTEMPT = "pa_1NqA2B3C4D5E6F7G8H9I0J"
WEBHOOK_SECRET = "whsec_test_8cQ2t0aWkZ1Yx3Vb"
NOW = 1_700_000_000


@pytest.fixture
def config(psp) -> ConnectorConfig:
    return ConnectorConfig(
        connector_id="mca_stripe_test",
        connector_type="stripe",
        base_url=psp.url + PREFIX,
        credentials={"api_key": API_KEY},
        webhook_secret=WEBHOOK_SECRET,
        connect_timeout=1.0,
        read_timeout=2.0,
    )


@pytest.fixture
def adapter(config) -> StripeAdapter:
    return get_adapter(config)


# --- authorize ------------------------------------------------------------------------------------


def test_authorize_sends_stripes_form_encoding_with_auth_version_and_idempotency_headers(
    psp, adapter, authorize_request
):
    psp.reply(
        "POST", f"{PREFIX}/v1/payment_intents", fixture="stripe/payment_intent_succeeded.json"
    )

    adapter.authorize(authorize_request)

    sent = psp.last()
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["stripe-version"] == STRIPE_API_VERSION
    assert sent.headers["idempotency-key"] == authorize_request.idempotency_key
    assert sent.form() == load_fixture("stripe/request_authorize.json")["form"]


def test_authorize_with_automatic_capture_is_approved_and_captured(psp, adapter, authorize_request):
    psp.reply(
        "POST", f"{PREFIX}/v1/payment_intents", fixture="stripe/payment_intent_succeeded.json"
    )

    result = adapter.authorize(authorize_request)

    assert result.outcome is Outcome.APPROVED
    assert result.psp_reference == PI
    assert result.captured is True
    assert result.amount == 2000
    assert result.http_status == 200
    assert result.latency_ms >= 0


def test_authorize_with_manual_capture_is_approved_and_not_captured(
    psp, adapter, authorize_request
):
    psp.reply(
        "POST",
        f"{PREFIX}/v1/payment_intents",
        fixture="stripe/payment_intent_requires_capture.json",
    )

    result = adapter.authorize(replace(authorize_request, capture=False))

    assert psp.last().form()["capture_method"] == "manual"
    assert result.outcome is Outcome.APPROVED
    assert result.captured is False
    assert result.amount == 2000


def test_insufficient_funds_is_a_soft_decline(psp, adapter, authorize_request):
    psp.reply(
        "POST",
        f"{PREFIX}/v1/payment_intents",
        status=402,
        fixture="stripe/error_card_declined_insufficient_funds.json",
    )

    result = adapter.authorize(authorize_request)

    assert result.outcome is Outcome.SOFT_DECLINE
    assert result.decline_code == "insufficient_funds"
    assert result.raw_code == "card_declined"
    assert result.psp_reference == PI  # from the error's payment_intent
    assert result.http_status == 402
    assert result.retryable_elsewhere is False


def test_expired_card_without_decline_code_is_a_hard_decline(psp, adapter, authorize_request):
    psp.reply(
        "POST", f"{PREFIX}/v1/payment_intents", status=402, fixture="stripe/error_expired_card.json"
    )

    result = adapter.authorize(authorize_request)

    assert result.outcome is Outcome.HARD_DECLINE
    assert result.decline_code == "expired_card"


@pytest.mark.parametrize(
    ("decline_code", "outcome"),
    [
        ("stolen_card", Outcome.HARD_DECLINE),
        ("fraudulent", Outcome.HARD_DECLINE),
        ("do_not_honor", Outcome.SOFT_DECLINE),
        ("issuer_not_available", Outcome.SOFT_DECLINE),
        ("a_code_stripe_adds_later", Outcome.SOFT_DECLINE),
    ],
)
def test_issuer_decline_codes_are_classified_by_the_decline_table(
    psp, adapter, authorize_request, decline_code, outcome
):
    body = load_fixture("stripe/error_card_declined_insufficient_funds.json")
    body["error"]["decline_code"] = decline_code
    psp.reply("POST", f"{PREFIX}/v1/payment_intents", status=402, body=body)

    result = adapter.authorize(authorize_request)

    assert result.outcome is outcome
    assert result.decline_code == decline_code


def test_3ds_requires_action_with_the_redirect_url(psp, adapter, authorize_request):
    psp.reply(
        "POST", f"{PREFIX}/v1/payment_intents", fixture="stripe/payment_intent_requires_action.json"
    )

    result = adapter.authorize(authorize_request)

    assert result.outcome is Outcome.REQUIRES_ACTION
    assert result.psp_reference == PI
    assert result.next_action["type"] == "redirect_to_url"
    assert result.next_action["redirect_to_url"]["url"].startswith(
        "https://hooks.stripe.com/3d_secure_2/hosted"
    )
    assert result.next_action["redirect_to_url"]["return_url"] == authorize_request.return_url


def test_processing_is_pending(psp, adapter, authorize_request):
    psp.reply(
        "POST", f"{PREFIX}/v1/payment_intents", fixture="stripe/payment_intent_processing.json"
    )

    assert adapter.authorize(authorize_request).outcome is Outcome.PENDING


@pytest.mark.parametrize(
    ("status", "fixture", "raw_code"),
    [
        (400, "stripe/error_invalid_request.json", "parameter_missing"),
        (401, "stripe/error_authentication.json", "invalid_request_error"),
        (429, "stripe/error_rate_limit.json", "rate_limit"),
    ],
)
def test_requests_refused_before_processing_are_errors_safe_to_fail_over(
    psp, adapter, authorize_request, status, fixture, raw_code
):
    psp.reply("POST", f"{PREFIX}/v1/payment_intents", status=status, fixture=fixture)

    result = adapter.authorize(authorize_request)

    assert result.outcome is Outcome.ERROR
    assert result.retryable_elsewhere is True
    assert result.raw_code == raw_code
    assert result.http_status == status


def test_an_idempotency_error_means_a_first_request_exists_so_the_outcome_is_unknown(
    psp, adapter, authorize_request
):
    psp.reply(
        "POST", f"{PREFIX}/v1/payment_intents", status=400, fixture="stripe/error_idempotency.json"
    )

    result = adapter.authorize(authorize_request)

    assert result.outcome is Outcome.UNKNOWN
    assert result.raw_code == "idempotency_error"
    assert result.retryable_elsewhere is False


@pytest.mark.parametrize("status", [500, 502, 504])
def test_server_errors_are_unknown_because_processing_may_have_begun(
    psp, adapter, authorize_request, status
):
    psp.reply(
        "POST", f"{PREFIX}/v1/payment_intents", status=status, fixture="stripe/error_api_error.json"
    )

    result = adapter.authorize(authorize_request)

    assert result.outcome is Outcome.UNKNOWN
    assert result.raw_code == "api_error"
    assert result.http_status == status
    assert result.retryable_elsewhere is False


def test_read_timeout_after_sending_is_unknown(psp, config, authorize_request):
    adapter = StripeAdapter(replace(config, read_timeout=0.2))
    psp.reply(
        "POST",
        f"{PREFIX}/v1/payment_intents",
        fixture="stripe/payment_intent_succeeded.json",
        delay=1.0,
    )

    result = adapter.authorize(authorize_request)

    assert result.outcome is Outcome.UNKNOWN
    assert result.raw_code == "read_timeout"
    assert result.retryable_elsewhere is False
    assert len(psp.received) == 1  # sent exactly once: no transport retry


def test_connection_refused_is_an_error_safe_to_fail_over(config, authorize_request):
    from tests.psp_adapters.fake_psp import closed_port

    adapter = StripeAdapter(replace(config, base_url=f"http://127.0.0.1:{closed_port()}{PREFIX}"))

    result = adapter.authorize(authorize_request)

    assert result.outcome is Outcome.ERROR
    assert result.retryable_elsewhere is True
    assert result.raw_code == "connect_failed"
    assert result.http_status is None


# --- capture, cancel, refund ----------------------------------------------------------------------


def test_capture_sends_amount_to_capture_and_is_approved(psp, adapter):
    psp.reply(
        "POST",
        f"{PREFIX}/v1/payment_intents/{PI}/capture",
        fixture="stripe/payment_intent_captured.json",
    )

    result = adapter.capture(
        CaptureRequest(psp_reference=PI, idempotency_key="cap-1", amount=1500, currency="eur")
    )

    assert psp.last().form() == {"amount_to_capture": "1500"}
    assert psp.last().headers["idempotency-key"] == "cap-1"
    assert result.outcome is Outcome.APPROVED
    assert result.captured is True
    assert result.amount == 1500


def test_capture_of_a_canceled_payment_intent_is_an_error(psp, adapter):
    psp.reply(
        "POST",
        f"{PREFIX}/v1/payment_intents/{PI}/capture",
        status=400,
        body={
            "error": {
                "code": "payment_intent_unexpected_state",
                "message": "This PaymentIntent could not be captured because it has a status "
                "of canceled. Only a PaymentIntent with one of the following statuses may be "
                "captured: requires_capture.",
                "type": "invalid_request_error",
            }
        },
    )

    result = adapter.capture(
        CaptureRequest(psp_reference=PI, idempotency_key="cap-1", amount=1500, currency="eur")
    )

    assert result.outcome is Outcome.ERROR
    assert result.raw_code == "payment_intent_unexpected_state"


def test_cancel_is_approved_when_the_payment_intent_is_canceled(psp, adapter):
    psp.reply(
        "POST",
        f"{PREFIX}/v1/payment_intents/{PI}/cancel",
        fixture="stripe/payment_intent_canceled.json",
    )

    result = adapter.cancel(CancelRequest(psp_reference=PI, idempotency_key="cancel-1"))

    assert psp.last().headers["idempotency-key"] == "cancel-1"
    assert result.outcome is Outcome.APPROVED
    assert result.captured is False
    assert result.raw_code == "canceled"


def test_refund_sends_payment_intent_amount_and_our_refund_id(psp, adapter):
    psp.reply("POST", f"{PREFIX}/v1/refunds", fixture="stripe/refund_succeeded.json")

    result = adapter.refund(
        RefundRequest(
            psp_reference=PI,
            idempotency_key="refund-1",
            refund_id="re_OurRefund0001",
            amount=500,
            currency="eur",
            reason="requested_by_customer",
        )
    )

    assert psp.last().form() == {
        "payment_intent": PI,
        "amount": "500",
        "metadata[refund_id]": "re_OurRefund0001",
        "reason": "requested_by_customer",
    }
    assert result.outcome is Outcome.APPROVED
    assert result.psp_reference == "re_3MtwBwLkdIwHu7ix0ZJ0k7r2"
    assert result.amount == 500


def test_a_pending_refund_is_pending_and_our_own_reasons_stay_with_us(psp, adapter):
    psp.reply("POST", f"{PREFIX}/v1/refunds", fixture="stripe/refund_pending.json")

    result = adapter.refund(
        RefundRequest(
            psp_reference=PI,
            idempotency_key="refund-2",
            refund_id="re_OurRefund0002",
            amount=500,
            currency="eur",
            reason="goodwill gesture",
        )
    )

    assert "reason" not in psp.last().form()  # Stripe accepts only its three reasons
    assert result.outcome is Outcome.PENDING


# --- retrieve -------------------------------------------------------------------------------------


def test_retrieve_by_psp_reference(psp, adapter):
    psp.reply(
        "GET",
        f"{PREFIX}/v1/payment_intents/{PI}",
        fixture="stripe/payment_intent_requires_capture.json",
    )

    result = adapter.retrieve(
        RetrieveRequest(attempt_id="pa_1", idempotency_key="k", psp_reference=PI)
    )

    assert psp.last().method == "GET"
    assert "idempotency-key" not in psp.last().headers
    assert result.outcome is Outcome.APPROVED
    assert result.captured is False


def test_retrieve_of_a_failed_payment_intent_is_its_decline(psp, adapter):
    failed = load_fixture("stripe/error_card_declined_insufficient_funds.json")["error"]
    psp.reply("GET", f"{PREFIX}/v1/payment_intents/{PI}", body=failed["payment_intent"])

    result = adapter.retrieve(
        RetrieveRequest(attempt_id="pa_1", idempotency_key="k", psp_reference=PI)
    )

    assert result.outcome is Outcome.SOFT_DECLINE
    assert result.decline_code == "insufficient_funds"


def test_retrieve_of_an_unknown_payment_intent_is_a_404_error(psp, adapter):
    psp.reply(
        "GET",
        f"{PREFIX}/v1/payment_intents/{PI}",
        status=404,
        body={
            "error": {
                "code": "resource_missing",
                "message": f"No such payment_intent: '{PI}'",
                "param": "intent",
                "type": "invalid_request_error",
            }
        },
    )

    result = adapter.retrieve(
        RetrieveRequest(attempt_id="pa_1", idempotency_key="k", psp_reference=PI)
    )

    assert result.outcome is Outcome.ERROR
    assert result.http_status == 404
    assert result.raw_code == "resource_missing"
    assert result.retryable_elsewhere is False


def test_retrieve_without_reference_searches_by_attempt_id_in_metadata(psp, adapter):
    psp.reply("GET", f"{PREFIX}/v1/payment_intents/search", fixture="stripe/search_result.json")

    result = adapter.retrieve(
        RetrieveRequest(attempt_id="pa_1NqA2B3C4D5E6F7G8H9I0J", idempotency_key="k")
    )

    assert psp.last().query == {"query": "metadata['attempt_id']:'pa_1NqA2B3C4D5E6F7G8H9I0J'"}
    assert result.outcome is Outcome.APPROVED
    assert result.psp_reference == PI


def test_retrieve_without_reference_and_nothing_found_stays_unknown(psp, adapter):
    psp.reply(
        "GET", f"{PREFIX}/v1/payment_intents/search", fixture="stripe/search_result_empty.json"
    )

    result = adapter.retrieve(RetrieveRequest(attempt_id="pa_lost", idempotency_key="k"))

    assert result.outcome is Outcome.UNKNOWN
    assert result.raw_code == "not_found"


def test_retrieve_not_yet_searchable_resends_the_original_with_its_idempotency_key(
    psp, adapter, authorize_request
):
    psp.reply(
        "GET", f"{PREFIX}/v1/payment_intents/search", fixture="stripe/search_result_empty.json"
    )
    psp.reply(
        "POST", f"{PREFIX}/v1/payment_intents", fixture="stripe/payment_intent_succeeded.json"
    )

    result = adapter.retrieve(
        RetrieveRequest(
            attempt_id=authorize_request.attempt_id,
            idempotency_key=authorize_request.idempotency_key,
            original=authorize_request,
        )
    )

    resent = psp.last()
    assert resent.headers["idempotency-key"] == authorize_request.idempotency_key
    assert resent.form() == load_fixture("stripe/request_authorize.json")["form"]
    assert result.outcome is Outcome.APPROVED


def test_retrieve_that_cannot_reach_stripe_stays_unknown(config):
    from tests.psp_adapters.fake_psp import closed_port

    adapter = StripeAdapter(replace(config, base_url=f"http://127.0.0.1:{closed_port()}"))

    result = adapter.retrieve(
        RetrieveRequest(attempt_id="pa_1", idempotency_key="k", psp_reference=PI)
    )

    assert result.outcome is Outcome.UNKNOWN  # never "safe to fail over" from an inquiry
    assert result.retryable_elsewhere is False


# --- webhooks -------------------------------------------------------------------------------------


def _signature_header(body: bytes, timestamp: int, secret: str = WEBHOOK_SECRET) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


@pytest.fixture
def clocked(config) -> StripeAdapter:
    return StripeAdapter(config, clock=lambda: NOW)


def test_a_correctly_signed_webhook_verifies(clocked):
    body = fixture_bytes("stripe/event_payment_intent_succeeded.json")

    clocked.verify_webhook({"Stripe-Signature": _signature_header(body, NOW - 10)}, body)


def test_signature_header_lookup_ignores_case_and_accepts_a_rolled_secret(clocked):
    body = fixture_bytes("stripe/event_payment_intent_succeeded.json")
    old = _signature_header(body, NOW, secret="whsec_old").split(",")[1]
    header = f"{_signature_header(body, NOW)},{old},v0=ignored"

    clocked.verify_webhook({"stripe-signature": header}, body)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing"),
        ({"Stripe-Signature": "garbage"}, "malformed"),
        ({"Stripe-Signature": f"t={NOW},v1=" + "0" * 64}, "does not match"),
        ({"Stripe-Signature": f"t=yesterday,v1={'0' * 64}"}, "malformed"),
    ],
)
def test_missing_malformed_or_wrong_signatures_are_rejected(clocked, headers, message):
    body = fixture_bytes("stripe/event_payment_intent_succeeded.json")

    with pytest.raises(WebhookVerificationError, match=message):
        clocked.verify_webhook(headers, body)


def test_a_tampered_body_is_rejected(clocked):
    body = fixture_bytes("stripe/event_payment_intent_succeeded.json")
    header = _signature_header(body, NOW)

    with pytest.raises(WebhookVerificationError, match="does not match"):
        clocked.verify_webhook({"Stripe-Signature": header}, body.replace(b"2000", b"9000"))


def test_a_signature_older_than_the_tolerance_is_rejected(clocked):
    body = fixture_bytes("stripe/event_payment_intent_succeeded.json")
    too_old = NOW - WEBHOOK_TOLERANCE_SECONDS - 1

    with pytest.raises(WebhookVerificationError, match="tolerance"):
        clocked.verify_webhook({"Stripe-Signature": _signature_header(body, too_old)}, body)
    clocked.verify_webhook(
        {"Stripe-Signature": _signature_header(body, NOW - WEBHOOK_TOLERANCE_SECONDS)}, body
    )


def test_without_a_configured_secret_every_webhook_is_rejected(config):
    adapter = StripeAdapter(replace(config, webhook_secret=""), clock=lambda: NOW)
    body = fixture_bytes("stripe/event_payment_intent_succeeded.json")

    with pytest.raises(WebhookVerificationError):
        adapter.verify_webhook({"Stripe-Signature": _signature_header(body, NOW, "")}, body)


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (
            "event_payment_intent_succeeded.json",
            {"event_type": "authorization", "success": True, "amount": 2000},
        ),
        (
            "event_payment_intent_amount_capturable_updated.json",
            {"event_type": "authorization", "success": True, "amount": 2000},
        ),
        (
            "event_payment_intent_payment_failed.json",
            {
                "event_type": "authorization",
                "success": False,
                "decline_code": "insufficient_funds",
                "raw_code": "card_declined",
            },
        ),
        ("event_payment_intent_canceled.json", {"event_type": "cancellation", "success": True}),
    ],
)
def test_payment_intent_events_are_normalized(adapter, fixture, expected):
    event = load_fixture(f"stripe/{fixture}")

    (parsed,) = adapter.parse_webhook(json.dumps(event).encode())

    assert parsed.psp_event_id == event["id"]
    assert parsed.psp_reference == PI
    assert parsed.attempt_id == "pa_1NqA2B3C4D5E6F7G8H9I0J"
    assert parsed.currency == "eur"
    assert parsed.occurred_at == event["created"]
    for name, value in expected.items():
        assert getattr(parsed, name) == value


def test_payment_intent_succeeded_for_manual_capture_is_a_capture(adapter):
    event = load_fixture("stripe/event_payment_intent_succeeded.json")
    event["data"]["object"]["capture_method"] = "manual"

    (parsed,) = adapter.parse_webhook(json.dumps(event).encode())

    assert parsed.event_type == "capture"


def test_refund_events_carry_our_refund_id_and_their_outcome(adapter):
    (succeeded,) = adapter.parse_webhook(fixture_bytes("stripe/event_refund_updated.json"))
    (failed,) = adapter.parse_webhook(fixture_bytes("stripe/event_refund_failed.json"))

    assert succeeded.event_type == failed.event_type == "refund"
    assert succeeded.success is True
    assert succeeded.refund_id == "re_OurRefund0001"
    assert succeeded.psp_reference == PI
    assert succeeded.amount == 500
    assert failed.success is False
    assert failed.raw_code == "expired_or_canceled_card"


def test_disputes_are_chargebacks_and_other_events_are_recorded_as_other(adapter):
    (dispute,) = adapter.parse_webhook(fixture_bytes("stripe/event_charge_dispute_created.json"))
    (other,) = adapter.parse_webhook(fixture_bytes("stripe/event_customer_created.json"))

    assert dispute.event_type == "chargeback"
    assert dispute.psp_reference == PI
    assert dispute.amount == 2000
    assert dispute.raw_code == "fraudulent"
    assert other.event_type == "other"


def test_a_body_that_is_not_an_event_is_refused(adapter):
    with pytest.raises(ValueError):
        adapter.parse_webhook(b"<html>")


# --- settlement -----------------------------------------------------------------------------------


def test_payout_reconciliation_report_is_parsed_into_minor_units(adapter):
    content = (FIXTURES / "stripe/payout_reconciliation_itemized.csv").read_text()
    jpy_pi, jpy_attempt = "pi_3MtwBwLkdIwHu7ixJpy00001", "pa_2JpyAttempt000000000001"
    kwd_pi, kwd_attempt = "pi_3MtwBwLkdIwHu7ixKwd00001", "pa_3KwdAttempt000000000001"
    day = "2024-03-15"  # the payout's effective date

    lines = adapter.parse_settlement_report(content)

    assert lines == [
        SettlementLine(PI, "charge", 2000, 55, 1945, "eur", day, ATTEMPT),
        SettlementLine(PI, "refund", -500, 0, -500, "eur", day, "re_OurRefund0001"),
        SettlementLine(jpy_pi, "charge", 1000, 36, 964, "jpy", day, jpy_attempt),
        SettlementLine(kwd_pi, "charge", 12345, 370, 11975, "kwd", day, kwd_attempt),
        SettlementLine(PI, "chargeback", -2000, 1500, -3500, "eur", day, ATTEMPT),
        SettlementLine("", "fee", -250, 0, -250, "eur", day, ""),
        SettlementLine("", "adjustment", 100, 0, 100, "eur", day, ""),
    ]
    assert all(line.net == line.gross - line.fee for line in lines)


def test_sub_minor_precision_in_a_report_is_refused_not_rounded(adapter):
    content = (
        "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id\n"
        "txn_1,2024-03-12 10:00:00,jpy,1000.5,0,1000.5,charge,ch_1\n"
    )

    with pytest.raises(ValueError, match="JPY"):
        adapter.parse_settlement_report(content)


def test_nested_form_encoding():
    assert encode_form(
        {"a": 1, "b": {"c": True, "d": None, "e": ["x", {"f": "y"}]}, "g": False}
    ) == [("a", "1"), ("b[c]", "true"), ("b[e][0]", "x"), ("b[e][1][f]", "y"), ("g", "false")]
