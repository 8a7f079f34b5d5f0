"""AdyenAdapter against a local HTTP server answering with fixtures from Adyen's API reference."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace

import pytest

from apps.psp_adapters.adyen import (
    REFUSAL_REASONS,
    AdyenAdapter,
    adyen_idempotency_key,
    refusal_decline_code,
)
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
from apps.psp_adapters.decline_codes import DECLINE_CLASSES
from apps.psp_adapters.registry import get_adapter
from tests.psp_adapters.conftest import API_KEY
from tests.psp_adapters.fake_psp import FIXTURES, closed_port, fixture_bytes, load_fixture

PREFIX = "/adyen/acme"
PSP_REFERENCE = "V4HZ4RBFJGXXGN82"
HMAC_KEY = "A1B2C3D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5F60718293A4B5C6D7E8F90"
DOCS_SAMPLE_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
SPECIAL_CHARACTERS_KEY = "74F490DD33F7327BAECC88B2947C011FC02D014A473AAA33A8EC93E4DC069174"


@pytest.fixture
def config(psp) -> ConnectorConfig:
    return ConnectorConfig(
        connector_id="mca_adyen_test",
        connector_type="adyen",
        base_url=psp.url + PREFIX,
        credentials={"api_key": API_KEY, "merchant_account": "AcmeCOM", "hmac_key": HMAC_KEY},
        connect_timeout=1.0,
        read_timeout=2.0,
    )


@pytest.fixture
def adapter(config) -> AdyenAdapter:
    return get_adapter(config)


PAYMENTS = f"{PREFIX}/v71/payments"


# --- authorize ------------------------------------------------------------------------------------


def test_authorize_sends_the_checkout_v71_payment_request(psp, adapter, authorize_request):
    psp.reply("POST", PAYMENTS, fixture="adyen/payments_authorised.json")

    adapter.authorize(authorize_request)

    sent = psp.last()
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["x-api-key"] == API_KEY
    assert sent.headers["idempotency-key"] == authorize_request.idempotency_key
    assert sent.json() == load_fixture("adyen/request_payments.json")["body"]


def test_authorised_with_automatic_capture_is_approved_and_captured(
    psp, adapter, authorize_request
):
    psp.reply("POST", PAYMENTS, fixture="adyen/payments_authorised.json")

    result = adapter.authorize(authorize_request)

    assert result.outcome is Outcome.APPROVED
    assert result.psp_reference == PSP_REFERENCE
    assert result.captured is True
    assert result.amount == 2000


def test_manual_capture_is_asked_per_payment_and_not_captured(psp, adapter, authorize_request):
    psp.reply("POST", PAYMENTS, fixture="adyen/payments_authorised.json")

    result = adapter.authorize(replace(authorize_request, capture=False))

    sent = psp.last().json()
    assert sent["additionalData"] == {"manualCapture": "true"}
    assert "captureDelayHours" not in sent
    assert result.outcome is Outcome.APPROVED
    assert result.captured is False


def test_not_enough_balance_is_a_soft_decline(psp, adapter, authorize_request):
    psp.reply("POST", PAYMENTS, fixture="adyen/payments_refused_not_enough_balance.json")

    result = adapter.authorize(authorize_request)

    assert result.outcome is Outcome.SOFT_DECLINE
    assert result.decline_code == "insufficient_funds"
    assert result.raw_code == "12"
    assert result.raw_message == "Not enough balance"
    assert result.psp_reference == "QFQTPCQ8HXSKGK82"


def test_cvc_declined_is_a_hard_decline(psp, adapter, authorize_request):
    psp.reply("POST", PAYMENTS, fixture="adyen/payments_refused_cvc_declined.json")

    result = adapter.authorize(authorize_request)

    assert result.outcome is Outcome.HARD_DECLINE
    assert result.decline_code == "incorrect_cvc"


def test_an_invalid_card_number_rejected_by_validation_is_a_hard_decline(
    psp, adapter, authorize_request
):
    psp.reply("POST", PAYMENTS, status=422, fixture="adyen/error_invalid_card_number_422.json")

    result = adapter.authorize(authorize_request)

    assert result.outcome is Outcome.HARD_DECLINE
    assert result.decline_code == "incorrect_number"


def test_redirect_shopper_requires_action_with_the_redirect(psp, adapter, authorize_request):
    psp.reply("POST", PAYMENTS, fixture="adyen/payments_redirect_shopper.json")

    result = adapter.authorize(authorize_request)

    assert result.outcome is Outcome.REQUIRES_ACTION
    assert result.next_action == {
        "type": "redirect_to_url",
        "redirect_to_url": {
            "url": "https://checkoutshopper-test.adyen.com/checkoutshopper/threeDS/redirect"
            "?MD=M2RzZXJ2ZXI6NzE5MDY3MzIwMjg3Nzc0Mw%3D%3D",
            "method": "GET",
            "return_url": authorize_request.return_url,
        },
    }


def test_native_3ds2_actions_are_passed_through_for_adyens_sdk(psp, adapter, authorize_request):
    psp.reply("POST", PAYMENTS, fixture="adyen/payments_identify_shopper.json")

    result = adapter.authorize(authorize_request)

    assert result.outcome is Outcome.REQUIRES_ACTION
    assert result.psp_reference == "LK8R2M9QXZ5BWZ82"
    assert result.next_action["type"] == "use_psp_sdk"
    assert result.next_action["psp_sdk"]["action"]["type"] == "threeDS2"


def test_received_is_pending(psp, adapter, authorize_request):
    psp.reply("POST", PAYMENTS, fixture="adyen/payments_received.json")

    assert adapter.authorize(authorize_request).outcome is Outcome.PENDING


def test_result_code_error_is_a_final_error_safe_to_fail_over(psp, adapter, authorize_request):
    psp.reply("POST", PAYMENTS, fixture="adyen/payments_error.json")

    result = adapter.authorize(authorize_request)

    assert result.outcome is Outcome.ERROR
    assert result.retryable_elsewhere is True
    assert result.decline_code == "processing_error"
    assert result.raw_message == "Acquirer Error"


@pytest.mark.parametrize(
    ("status", "fixture", "raw_code"),
    [
        (422, "adyen/error_validation_422.json", "130"),
        (401, "adyen/error_unauthorized_401.json", "000"),
    ],
)
def test_api_errors_before_processing_are_errors_safe_to_fail_over(
    psp, adapter, authorize_request, status, fixture, raw_code
):
    psp.reply("POST", PAYMENTS, status=status, fixture=fixture)

    result = adapter.authorize(authorize_request)

    assert result.outcome is Outcome.ERROR
    assert result.retryable_elsewhere is True
    assert result.raw_code == raw_code
    assert result.http_status == status


def test_a_request_with_this_key_in_progress_is_unknown(psp, adapter, authorize_request):
    psp.reply("POST", PAYMENTS, status=422, fixture="adyen/error_idempotency_in_progress.json")

    result = adapter.authorize(authorize_request)

    assert result.outcome is Outcome.UNKNOWN
    assert result.raw_code == "704"


def test_a_transient_error_header_is_unknown(psp, adapter, authorize_request):
    psp.reply(
        "POST",
        PAYMENTS,
        status=422,
        fixture="adyen/error_validation_422.json",
        headers={"Transient-Error": "true"},
    )

    assert adapter.authorize(authorize_request).outcome is Outcome.UNKNOWN


def test_a_server_error_is_unknown(psp, adapter, authorize_request):
    psp.reply("POST", PAYMENTS, status=500, fixture="adyen/error_internal_500.json")

    result = adapter.authorize(authorize_request)

    assert result.outcome is Outcome.UNKNOWN
    assert result.http_status == 500
    # the error's pspReference names the failed request, not a payment: kept for audit only
    assert result.psp_reference == ""
    assert "LXNV3CRD6MTGWZ82" in result.raw_message


def test_read_timeout_is_unknown_and_connection_refused_is_an_error(psp, config, authorize_request):
    psp.reply("POST", PAYMENTS, fixture="adyen/payments_authorised.json", delay=1.0)
    slow = AdyenAdapter(replace(config, read_timeout=0.2))
    down = AdyenAdapter(replace(config, base_url=f"http://127.0.0.1:{closed_port()}{PREFIX}"))

    timed_out = slow.authorize(authorize_request)
    refused = down.authorize(authorize_request)

    assert timed_out.outcome is Outcome.UNKNOWN
    assert timed_out.raw_code == "read_timeout"
    assert refused.outcome is Outcome.ERROR
    assert refused.retryable_elsewhere is True


def test_idempotency_keys_longer_than_adyens_limit_are_hashed_stably():
    long_key = "pa_" + "x" * 100

    assert adyen_idempotency_key("short-key") == "short-key"
    assert len(adyen_idempotency_key(long_key)) == 64
    assert adyen_idempotency_key(long_key) == adyen_idempotency_key(long_key)


# --- capture, cancel, refund ----------------------------------------------------------------------


def test_capture_is_pending_until_the_capture_webhook(psp, adapter):
    psp.reply(
        "POST",
        f"{PAYMENTS}/{PSP_REFERENCE}/captures",
        status=201,
        fixture="adyen/capture_received.json",
    )

    result = adapter.capture(
        CaptureRequest(
            psp_reference=PSP_REFERENCE,
            idempotency_key="pa_1NqA2B3C4D5E6F7G8H9I0J-capture",
            amount=1500,
            currency="eur",
        )
    )

    assert psp.last().json() == {
        "merchantAccount": "AcmeCOM",
        "amount": {"value": 1500, "currency": "EUR"},
        "reference": "pa_1NqA2B3C4D5E6F7G8H9I0J-capture",
    }
    assert psp.last().headers["idempotency-key"] == "pa_1NqA2B3C4D5E6F7G8H9I0J-capture"
    assert result.outcome is Outcome.PENDING
    assert result.psp_reference == PSP_REFERENCE
    assert result.amount == 1500
    assert result.http_status == 201


def test_cancel_is_pending_until_the_cancellation_webhook(psp, adapter):
    psp.reply(
        "POST",
        f"{PAYMENTS}/{PSP_REFERENCE}/cancels",
        status=201,
        fixture="adyen/cancel_received.json",
    )

    result = adapter.cancel(
        CancelRequest(psp_reference=PSP_REFERENCE, idempotency_key="pa_1-cancel")
    )

    assert psp.last().json() == {"merchantAccount": "AcmeCOM", "reference": "pa_1-cancel"}
    assert result.outcome is Outcome.PENDING
    assert result.psp_reference == PSP_REFERENCE


def test_refund_is_pending_and_reports_the_refunds_own_reference(psp, adapter):
    psp.reply(
        "POST",
        f"{PAYMENTS}/{PSP_REFERENCE}/refunds",
        status=201,
        fixture="adyen/refund_received.json",
    )

    result = adapter.refund(
        RefundRequest(
            psp_reference=PSP_REFERENCE,
            idempotency_key="refund-1",
            refund_id="re_OurRefund0001",
            amount=500,
            currency="eur",
            reason="requested_by_customer",
        )
    )

    assert psp.last().json() == {
        "merchantAccount": "AcmeCOM",
        "amount": {"value": 500, "currency": "EUR"},
        "reference": "re_OurRefund0001",
        "merchantRefundReason": "CUSTOMER REQUEST",
    }
    assert result.outcome is Outcome.PENDING
    assert result.psp_reference == "KMFN7Z8QGZ3WCB82"


def test_a_refund_server_error_is_unknown(psp, adapter):
    psp.reply(
        "POST",
        f"{PAYMENTS}/{PSP_REFERENCE}/refunds",
        status=500,
        fixture="adyen/error_internal_500.json",
    )

    result = adapter.refund(
        RefundRequest(
            psp_reference=PSP_REFERENCE,
            idempotency_key="refund-1",
            refund_id="re_1",
            amount=500,
            currency="eur",
        )
    )

    assert result.outcome is Outcome.UNKNOWN


# --- retrieve -------------------------------------------------------------------------------------


def test_retrieve_resends_the_original_request_with_the_same_idempotency_key(
    psp, adapter, authorize_request
):
    psp.reply("POST", PAYMENTS, fixture="adyen/payments_authorised.json")
    adapter.authorize(authorize_request)

    result = adapter.retrieve(
        RetrieveRequest(
            attempt_id=authorize_request.attempt_id,
            idempotency_key=authorize_request.idempotency_key,
            original=authorize_request,
        )
    )

    first, resent = psp.received
    assert resent.headers["idempotency-key"] == first.headers["idempotency-key"]
    assert resent.body == first.body  # identical, so Adyen answers with the first response
    assert result.outcome is Outcome.APPROVED
    assert result.psp_reference == PSP_REFERENCE


def test_retrieve_without_the_original_request_is_unknown_and_sends_nothing(psp, adapter):
    result = adapter.retrieve(
        RetrieveRequest(attempt_id="pa_1", idempotency_key="k", psp_reference=PSP_REFERENCE)
    )

    assert result.outcome is Outcome.UNKNOWN
    assert result.psp_reference == PSP_REFERENCE
    assert psp.received == []


def test_retrieve_that_cannot_reach_adyen_stays_unknown(config, authorize_request):
    adapter = AdyenAdapter(replace(config, base_url=f"http://127.0.0.1:{closed_port()}"))

    result = adapter.retrieve(
        RetrieveRequest(attempt_id="pa_1", idempotency_key="k", original=authorize_request)
    )

    assert result.outcome is Outcome.UNKNOWN


# --- webhooks -------------------------------------------------------------------------------------


def _sign(item: dict, hex_key: str = HMAC_KEY) -> None:
    """Signs a NotificationRequestItem as Adyen documents it (independently of the adapter)."""
    amount = item.get("amount", {})
    fields = [
        item.get("pspReference", ""),
        item.get("originalReference", ""),
        item.get("merchantAccountCode", ""),
        item.get("merchantReference", ""),
        str(amount.get("value", "")),
        amount.get("currency", ""),
        item.get("eventCode", ""),
        item.get("success", ""),
    ]
    digest = hmac.new(bytes.fromhex(hex_key), ":".join(fields).encode(), hashlib.sha256)
    item.setdefault("additionalData", {})["hmacSignature"] = base64.b64encode(
        digest.digest()
    ).decode()


def _signed_events(hex_key: str = HMAC_KEY) -> dict:
    notification = load_fixture("adyen/notification_events.json")
    for wrapper in notification["notificationItems"]:
        _sign(wrapper["NotificationRequestItem"], hex_key)
    return notification


def test_adyens_documented_sample_verifies_with_its_key(config):
    adapter = AdyenAdapter(replace(config, credentials={"hmac_key": DOCS_SAMPLE_KEY}))

    adapter.verify_webhook({}, fixture_bytes("adyen/notification_docs_sample.json"))


def test_values_with_colons_are_signed_unescaped(config):
    adapter = AdyenAdapter(replace(config, credentials={}, webhook_secret=SPECIAL_CHARACTERS_KEY))

    adapter.verify_webhook({}, fixture_bytes("adyen/notification_special_characters.json"))


def test_every_item_of_a_batch_must_be_signed(adapter):
    adapter.verify_webhook({}, json.dumps(_signed_events()).encode())


@pytest.mark.parametrize("tamper", ["value", "success", "signature", "missing", "wrong_key"])
def test_tampered_missing_or_foreign_signatures_are_rejected(adapter, tamper):
    notification = _signed_events()
    item = notification["notificationItems"][3]["NotificationRequestItem"]
    if tamper == "value":
        item["amount"]["value"] = 999999
    elif tamper == "success":
        item["success"] = "false"
    elif tamper == "signature":
        item["additionalData"]["hmacSignature"] = "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="
    elif tamper == "missing":
        del item["additionalData"]["hmacSignature"]
    else:
        notification = _signed_events("00" * 32)

    with pytest.raises(WebhookVerificationError):
        adapter.verify_webhook({}, json.dumps(notification).encode())


@pytest.mark.parametrize(
    "body", [b"not json", b"{}", b'{"notificationItems": []}', b'{"notificationItems": [1]}']
)
def test_malformed_notifications_are_rejected(adapter, body):
    with pytest.raises(WebhookVerificationError):
        adapter.verify_webhook({}, body)


def test_without_a_key_or_with_a_non_hex_key_every_notification_is_rejected(config):
    body = json.dumps(_signed_events()).encode()
    for credentials in ({}, {"hmac_key": "not-hex"}):
        adapter = AdyenAdapter(replace(config, credentials=credentials, webhook_secret=""))
        with pytest.raises(WebhookVerificationError):
            adapter.verify_webhook({}, body)


def test_notification_items_are_normalized(adapter):
    events = adapter.parse_webhook(fixture_bytes("adyen/notification_events.json"))

    summary = [
        (e.event_type, e.success, e.psp_reference, e.attempt_id, e.refund_id, e.amount)
        for e in events
    ]
    assert summary == [
        ("authorization", True, PSP_REFERENCE, "pa_1NqA2B3C4D5E6F7G8H9I0J", "", 2000),
        ("authorization", False, "QFQTPCQ8HXSKGK82", "pa_1NqA2B3C4D5E6F7G8H9I0J", "", 2000),
        ("capture", True, PSP_REFERENCE, "", "", 1500),
        ("capture", False, PSP_REFERENCE, "", "", 1500),  # CAPTURE_FAILED arrives as "true"
        ("cancellation", True, PSP_REFERENCE, "", "", 2000),
        ("refund", True, PSP_REFERENCE, "", "re_OurRefund0001", 500),
        ("refund", False, PSP_REFERENCE, "", "re_OurRefund0001", 500),
        ("refund", True, PSP_REFERENCE, "", "re_OurRefund0002", 2000),  # CANCEL_OR_REFUND
        ("chargeback", True, PSP_REFERENCE, "", "", 2000),
        ("other", True, "settlement_detail_report_batch_42.csv", "", "", 0),
    ]
    refused = events[1]
    assert refused.decline_code == "insufficient_funds"
    assert refused.raw_code == "Not enough balance"
    assert events[0].currency == "eur"
    assert events[0].occurred_at == 1710234902  # 2024-03-12T10:15:02+01:00


def test_event_ids_are_stable_per_notification_and_distinct_across_them(adapter):
    body = fixture_bytes("adyen/notification_events.json")

    first = [e.psp_event_id for e in adapter.parse_webhook(body)]
    again = [e.psp_event_id for e in adapter.parse_webhook(body)]

    assert first == again
    assert len(set(first)) == len(first)
    assert first[0] == f"{PSP_REFERENCE}:AUTHORISATION:true"


# --- refusal reasons ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "code", "normalized"),
    [
        ("Refused", "2", "generic_decline"),
        ("Not enough balance", "12", "insufficient_funds"),
        ("Expired Card", "6", "expired_card"),
        ("CVC Declined", "24", "incorrect_cvc"),
        ("Blocked Card", "5", "restricted_card"),
        ("FRAUD", "20", "fraudulent"),
        ("Issuer Unavailable", "9", "issuer_not_available"),
        ("Acquirer Error", "4", "processing_error"),
        ("Declined Non Generic", "27", "do_not_honor"),
        ("Do Not Honor", "", "do_not_honor"),
        ("Withdrawal amount exceeded", "28", "card_velocity_exceeded"),
        ("not enough BALANCE", "", "insufficient_funds"),  # text match ignores case
        ("", "12", "insufficient_funds"),  # code alone
        ("A reason Adyen adds later", "99", "generic_decline"),
    ],
)
def test_refusal_reasons_map_to_normalized_decline_codes(reason, code, normalized):
    assert refusal_decline_code(reason, code) == normalized


def test_every_refusal_reason_maps_to_a_code_of_the_decline_table():
    assert {code for _, _, code in REFUSAL_REASONS} <= set(DECLINE_CLASSES)


# --- settlement -----------------------------------------------------------------------------------


def test_settlement_details_report_is_parsed_into_minor_units(adapter):
    content = (FIXTURES / "adyen/settlement_details_report.csv").read_text()
    attempt, refund = "pa_1NqA2B3C4D5E6F7G8H9I0J", "re_OurRefund0001"
    jpy, jpy_attempt = "C8WPJ4XD5KBGWZ82", "pa_2JpyAttempt000000000001"
    kwd, kwd_attempt = "K3LMN5TQ8RSVWX82", "pa_3KwdAttempt000000000001"
    usd, usd_attempt = "P9QRS2TUV4WXYZ82", "pa_4UsdAttempt000000000001"
    day1, day2, day3, day4 = "2024-03-12", "2024-03-13", "2024-03-14", "2024-03-15"

    lines = adapter.parse_settlement_report(content)

    assert lines == [
        SettlementLine(PSP_REFERENCE, "charge", 2000, 47, 1953, "eur", day1, attempt),
        SettlementLine(PSP_REFERENCE, "refund", -500, 0, -500, "eur", day2, refund),
        SettlementLine(jpy, "charge", 1000, 36, 964, "jpy", day1, jpy_attempt),
        SettlementLine(kwd, "charge", 12345, 370, 11975, "kwd", day1, kwd_attempt),
        # a USD payment settled in EUR: gross restated in the settlement currency
        SettlementLine(usd, "charge", 920, 20, 900, "eur", day1, usd_attempt),
        SettlementLine(PSP_REFERENCE, "chargeback", -1500, 0, -1500, "eur", day2, attempt),
        SettlementLine("", "fee", 0, 250, -250, "eur", day3, "Transaction Fees March 2024"),
        SettlementLine("", "payout", -100000, 0, -100000, "eur", day4, ""),
        SettlementLine("", "adjustment", 300, 0, 300, "eur", day4, ""),
    ]
    assert all(line.net == line.gross - line.fee for line in lines)


def test_report_columns_without_currency_suffixes_are_read_too(adapter):
    content = (FIXTURES / "adyen/settlement_details_report.csv").read_text()
    header, rest = content.split("\n", 1)
    plain = header.replace(" (GC)", "").replace(" (NC)", "")

    assert adapter.parse_settlement_report(f"{plain}\n{rest}") == adapter.parse_settlement_report(
        content
    )


def test_settlement_amounts_are_exact_decimals(adapter):
    """0.1 + 0.2 style float errors would show up as an off-by-one minor unit."""
    content = (FIXTURES / "adyen/settlement_details_report.csv").read_text()
    row = (
        "AcmeCompany,AcmeCOM,X1,pa_x,visa,2024-03-12 10:00:00,CET,Settled,X1,EUR,,0.30,1,EUR,"
        ",0.29,,0.01,,,visacredit,,42\n"
    )

    (line,) = adapter.parse_settlement_report(content.split("\n", 1)[0] + "\n" + row)

    assert (line.gross, line.fee, line.net) == (30, 1, 29)
