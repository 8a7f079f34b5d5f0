"""Our real Stripe and Adyen adapters against the simulator: the wire formats agree end to end."""

from __future__ import annotations

import uuid

import pytest

from apps.psp_adapters.contract import (
    AuthorizeRequest,
    CancelRequest,
    CaptureRequest,
    CardData,
    ConnectorConfig,
    Outcome,
    RefundRequest,
    RetrieveRequest,
)
from apps.psp_adapters.decline_codes import is_hard
from apps.psp_adapters.registry import get_adapter
from apps.psp_simulator import cards

pytestmark = pytest.mark.slow

STRIPE_WEBHOOK_SECRET = "whsec_e2e_secret"
ADYEN_HMAC_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
DECLINES = [card for card in cards.TEST_CARDS if card.outcome == cards.DECLINE]


@pytest.fixture
def stripe_adapter(simulator_url, connector):
    return get_adapter(
        ConnectorConfig(
            connector_id=connector,
            connector_type="stripe",
            base_url=f"{simulator_url}/stripe/{connector}",
            credentials={"api_key": "sk_test_e2e"},
            webhook_secret=STRIPE_WEBHOOK_SECRET,
            read_timeout=1.0,
        )
    )


@pytest.fixture
def adyen_adapter(simulator_url, connector):
    return get_adapter(
        ConnectorConfig(
            connector_id=connector,
            connector_type="adyen",
            base_url=f"{simulator_url}/adyen/{connector}",
            credentials={
                "api_key": "AQE_e2e",
                "merchant_account": "E2EShop",
                "hmac_key": ADYEN_HMAC_KEY,
            },
            read_timeout=1.0,
        )
    )


def authorize_request(number: str = "4242424242424242", *, capture: bool = True, amount=2000):
    attempt_id = f"pa_{uuid.uuid4().hex[:12]}"
    return AuthorizeRequest(
        attempt_id=attempt_id,
        idempotency_key=f"{attempt_id}:authorize",
        amount=amount,
        currency="eur",
        capture=capture,
        card=CardData(number=number, exp_month=12, exp_year=2034, cvc="123", holder_name="Jo"),
        return_url="https://shop.example/back",
    )


def test_stripe_authorize_capture_refund(stripe_adapter):
    request = authorize_request(capture=False, amount=5000)

    authorized = stripe_adapter.authorize(request)
    captured = stripe_adapter.capture(
        CaptureRequest(authorized.psp_reference, f"{request.attempt_id}:capture", 5000, "eur")
    )
    refunded = stripe_adapter.refund(
        RefundRequest(captured.psp_reference, f"{request.attempt_id}:refund", "re_1", 1500, "eur")
    )

    assert (authorized.outcome, authorized.captured) == (Outcome.APPROVED, False)
    assert (captured.outcome, captured.captured, captured.amount) == (Outcome.APPROVED, True, 5000)
    assert (refunded.outcome, refunded.amount) == (Outcome.APPROVED, 1500)


def test_stripe_cancel(stripe_adapter):
    request = authorize_request(capture=False)
    authorized = stripe_adapter.authorize(request)

    canceled = stripe_adapter.cancel(
        CancelRequest(authorized.psp_reference, f"{request.attempt_id}:cancel")
    )

    assert canceled.outcome == Outcome.APPROVED


@pytest.mark.parametrize("card", DECLINES, ids=lambda card: card.decline_code)
def test_stripe_declines_normalize_to_the_table(stripe_adapter, card):
    result = stripe_adapter.authorize(authorize_request(card.number))

    assert result.decline_code == card.decline_code
    assert result.outcome == (
        Outcome.HARD_DECLINE if is_hard(card.decline_code) else Outcome.SOFT_DECLINE
    )


def test_stripe_three_ds_is_requires_action(stripe_adapter):
    result = stripe_adapter.authorize(authorize_request("4000000000003220"))

    assert result.outcome == Outcome.REQUIRES_ACTION
    assert result.next_action["type"] == "redirect_to_url"


def test_stripe_lost_response_is_unknown_then_found_by_inquiry(stripe_adapter, control, connector):
    control.set_faults(
        connector,
        {
            "response_lost_rate": 1,
            "response_lost_delay_s": 3,
            "limit": 1,
            "operations": ["authorize"],
        },
    )
    request = authorize_request()

    lost = stripe_adapter.authorize(request)
    inquiry = stripe_adapter.retrieve(RetrieveRequest(request.attempt_id, request.idempotency_key))

    assert lost.outcome == Outcome.UNKNOWN
    assert inquiry.outcome == Outcome.APPROVED
    [charge] = control.charges(connector)
    assert charge["payment_id"] == inquiry.psp_reference


def test_stripe_webhooks_verify_and_parse(stripe_adapter, control, connector, receiver):
    control.register_webhook(connector, receiver.url, STRIPE_WEBHOOK_SECRET, "stripe")
    request = authorize_request(capture=False)

    authorized = stripe_adapter.authorize(request)

    [webhook] = receiver.wait_for(1)
    stripe_adapter.verify_webhook(webhook.headers, webhook.body)
    [event] = stripe_adapter.parse_webhook(webhook.body)
    assert (event.event_type, event.success) == ("authorization", True)
    assert (event.psp_reference, event.attempt_id) == (authorized.psp_reference, request.attempt_id)


def test_adyen_authorize_capture_and_its_webhook(adyen_adapter, control, connector, receiver):
    control.register_webhook(connector, receiver.url, ADYEN_HMAC_KEY, "adyen")
    request = authorize_request(capture=False, amount=3000)

    authorized = adyen_adapter.authorize(request)
    capture = adyen_adapter.capture(
        CaptureRequest(authorized.psp_reference, f"{request.attempt_id}:capture", 3000, "eur")
    )

    assert (authorized.outcome, authorized.captured) == (Outcome.APPROVED, False)
    assert capture.outcome == Outcome.PENDING
    events = []
    for webhook in receiver.wait_for(2):
        adyen_adapter.verify_webhook(webhook.headers, webhook.body)
        events += adyen_adapter.parse_webhook(webhook.body)
    summary = [(e.event_type, e.success, e.psp_reference) for e in events]
    assert summary == [
        ("authorization", True, authorized.psp_reference),
        ("capture", True, authorized.psp_reference),
    ]
    assert events[0].attempt_id == request.attempt_id


def test_adyen_refund_webhook_names_our_refund(adyen_adapter, control, connector, receiver):
    control.register_webhook(connector, receiver.url, ADYEN_HMAC_KEY, "adyen")
    request = authorize_request()
    authorized = adyen_adapter.authorize(request)

    refund = adyen_adapter.refund(
        RefundRequest(authorized.psp_reference, f"{request.attempt_id}:r", "re_ours", 500, "eur")
    )

    assert refund.outcome == Outcome.PENDING
    refund_event = adyen_adapter.parse_webhook(receiver.wait_for(2)[1].body)[0]
    assert (refund_event.event_type, refund_event.success, refund_event.refund_id) == (
        "refund",
        True,
        "re_ours",
    )


@pytest.mark.parametrize("card", DECLINES, ids=lambda card: card.decline_code)
def test_adyen_declines_keep_their_hard_or_soft_class(adyen_adapter, card):
    result = adyen_adapter.authorize(authorize_request(card.number))

    if card.adyen_result_code == "Error":
        assert result.outcome == Outcome.ERROR
    else:
        expected = Outcome.HARD_DECLINE if is_hard(card.decline_code) else Outcome.SOFT_DECLINE
        assert result.outcome == expected, result


def test_adyen_lost_response_is_resolved_by_an_idempotent_resend(adyen_adapter, control, connector):
    control.set_faults(connector, {"response_lost_rate": 1, "response_lost_delay_s": 3, "limit": 1})
    request = authorize_request()

    lost = adyen_adapter.authorize(request)
    inquiry = adyen_adapter.retrieve(
        RetrieveRequest(request.attempt_id, request.idempotency_key, original=request)
    )

    assert lost.outcome == Outcome.UNKNOWN
    assert inquiry.outcome == Outcome.APPROVED
    [charge] = control.charges(connector)
    assert charge["id"] == inquiry.psp_reference


def test_an_outage_before_processing_is_unknown_or_error_and_charges_nothing(
    stripe_adapter, control, connector
):
    control.set_faults(connector, {"outage": True})

    result = stripe_adapter.authorize(authorize_request())

    assert result.outcome in (Outcome.UNKNOWN, Outcome.ERROR)
    assert control.charges(connector) == []
