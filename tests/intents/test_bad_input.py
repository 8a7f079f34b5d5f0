"""Each bad input: a clear code and param, no state change, no PSP call where none is needed."""

import pytest

from apps.intents.models import PaymentIntent, Refund

pytestmark = pytest.mark.usefixtures("connectors")


def _error(response, status):
    assert response.status_code == status, response.content
    return response.json()["error"]


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"amount": 100, "currency": "zzz"}, "currency_invalid", "currency"),
        ({"amount": 100, "currency": "xau"}, "currency_unsupported", "currency"),
        ({"amount": 0, "currency": "eur"}, "amount_too_small", "amount"),
        ({"amount": -1, "currency": "eur"}, "amount_too_small", "amount"),
        ({"amount": 10.5, "currency": "eur"}, "amount_invalid", "amount"),
        ({"amount": "100", "currency": "eur"}, "amount_invalid", "amount"),
        ({"amount": 10**10, "currency": "eur"}, "amount_too_large", "amount"),
        ({"currency": "eur"}, "parameter_missing", "amount"),
        (
            {"amount": 100, "currency": "eur", "capture_method": "later"},
            "parameter_invalid_choice",
            "capture_method",
        ),
        (
            {"amount": 100, "currency": "eur", "payment_method": "pm_nope"},
            "resource_missing",
            "payment_method",
        ),
        ({"amount": 100, "currency": "eur", "colour": "red"}, "parameter_unknown", "colour"),
        (
            {"amount": 100, "currency": "eur", "confirm": True},
            "parameter_missing",
            "payment_method",
        ),
    ],
)
def test_invalid_create_parameters(api, body, code, param):
    error = _error(
        api.post("/v1/payment_intents", body, format="json"),
        404 if code == "resource_missing" else 400,
    )
    assert error["code"] == code
    assert error["param"] == param
    assert PaymentIntent.objects.count() == 0


def test_capture_above_capturable(api, pay):
    intent_id = pay(amount=1000, capture_method="manual").json()["id"]
    error = _error(
        api.post(
            f"/v1/payment_intents/{intent_id}/capture", {"amount_to_capture": 1001}, format="json"
        ),
        400,
    )
    assert error["code"] == "amount_too_large" and error["param"] == "amount_to_capture"
    assert PaymentIntent.objects.get(public_id=intent_id).status == "requires_capture"


def test_confirm_on_a_canceled_intent(api, tokenize):
    intent_id = api.post(
        "/v1/payment_intents",
        {"amount": 100, "currency": "eur", "payment_method": tokenize()},
        format="json",
    ).json()["id"]
    api.post(f"/v1/payment_intents/{intent_id}/cancel", {}, format="json")
    error = _error(api.post(f"/v1/payment_intents/{intent_id}/confirm", {}, format="json"), 409)
    assert error["code"] == "payment_intent_unexpected_state"
    assert "canceled" in error["message"]
    assert not PaymentIntent.objects.get(public_id=intent_id).attempts.exists()


def test_cancel_after_success(api, pay):
    intent_id = pay().json()["id"]
    error = _error(api.post(f"/v1/payment_intents/{intent_id}/cancel", {}, format="json"), 409)
    assert error["code"] == "payment_intent_unexpected_state"
    assert PaymentIntent.objects.get(public_id=intent_id).status == "succeeded"


def test_refund_on_an_uncaptured_intent(api, pay):
    intent_id = pay(capture_method="manual").json()["id"]
    error = _error(api.post("/v1/refunds", {"payment_intent": intent_id}, format="json"), 409)
    assert error["code"] == "charge_not_captured"
    assert Refund.objects.count() == 0


def test_refund_above_what_is_left(api, pay):
    intent_id = pay(amount=500).json()["id"]
    error = _error(
        api.post("/v1/refunds", {"payment_intent": intent_id, "amount": 501}, format="json"), 400
    )
    assert error["code"] == "amount_too_large" and error["param"] == "amount"
    assert Refund.objects.count() == 0
    assert PaymentIntent.objects.get(public_id=intent_id).amount_refunded == 0


def test_capture_on_a_succeeded_intent(api, pay):
    intent_id = pay().json()["id"]
    error = _error(api.post(f"/v1/payment_intents/{intent_id}/capture", {}, format="json"), 409)
    assert error["code"] == "payment_intent_unexpected_state"


def test_currency_the_connectors_do_not_support(api, tokenize):
    response = api.post(
        "/v1/payment_intents",
        {"amount": 100, "currency": "gbp", "payment_method": tokenize(), "confirm": True},
        format="json",
    )
    error = _error(response, 400)
    assert error["code"] == "no_eligible_connector"
    assert set(error["routing"]["skipped"].values()) == {"currency_unsupported"}
    intent = PaymentIntent.objects.get()
    assert intent.status == "requires_confirmation" and not intent.attempts.exists()
