"""The Adyen Checkout dialect over real HTTP: payments, 3-D Secure, modifications, idempotency."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlparse

import pytest

from apps.psp_simulator import cards

pytestmark = pytest.mark.slow


def test_authorised_payment(adyen, control, connector):
    response = adyen.pay("4242424242424242", amount=1234, reference="pa_adyen_ok")

    assert response.status_code == 200
    body = response.json()
    assert body["resultCode"] == "Authorised"
    assert len(body["pspReference"]) == 16
    assert body["merchantReference"] == "pa_adyen_ok"
    assert body["amount"] == {"currency": "EUR", "value": 1234}
    assert body["additionalData"]["cardSummary"] == "4242"
    assert "refusalReason" not in body
    [charge] = control.charges(connector)
    assert (charge["id"], charge["status"]) == (body["pspReference"], "captured")


def test_manual_capture_authorises_without_capturing(adyen, control, connector):
    body = adyen.pay(manual_capture=True).json()

    assert body["resultCode"] == "Authorised"
    assert [c["status"] for c in control.charges(connector)] == ["authorized"]


REFUSALS = [
    card
    for card in cards.TEST_CARDS
    if card.outcome == cards.DECLINE and card.adyen_result_code == "Refused"
]


@pytest.mark.parametrize("card", REFUSALS, ids=lambda card: card.decline_code)
def test_decline_cards_are_refused_with_adyen_refusal_reasons(adyen, card):
    response = adyen.pay(card.number)

    assert response.status_code == 200  # Adyen answers refusals with 200
    body = response.json()
    assert body["resultCode"] == "Refused"
    assert body["refusalReasonCode"] == card.adyen_refusal_code
    assert body["refusalReason"] == card.adyen_refusal_reason
    assert body["additionalData"]["refusalReasonRaw"] == card.raw_response


def test_processing_error_card_answers_result_code_error(adyen):
    body = adyen.pay("4000000000000119").json()

    assert body["resultCode"] == "Error"
    assert body["refusalReason"] == "Acquirer Error"


def test_three_ds_redirect_then_details_authorises(adyen, control, connector, http):
    body = adyen.pay("4000000000003220", manual_capture=True).json()

    assert body["resultCode"] == "RedirectShopper"
    action = body["action"]
    assert (action["type"], action["method"], action["paymentMethodType"]) == (
        "redirect",
        "GET",
        "scheme",
    )
    assert control.charges(connector) == []

    page = http.get(f"{action['url']}&outcome=succeeded", allow_redirects=False, timeout=5)
    assert page.status_code == 302
    back = urlparse(page.headers["Location"])
    assert back.netloc == "shop.example"
    [redirect_result] = parse_qs(back.query)["redirectResult"]

    details = adyen.post("/v71/payments/details", {"details": {"redirectResult": redirect_result}})

    assert details.status_code == 200
    assert details.json()["resultCode"] == "Authorised"
    assert details.json()["pspReference"] == body["pspReference"]
    assert [c["status"] for c in control.charges(connector)] == ["authorized"]
    # asking again returns the same decision
    again = adyen.post("/v71/payments/details", {"details": {"redirectResult": redirect_result}})
    assert again.json() == details.json()


def test_three_ds_failure_is_refused_3d_not_authenticated(adyen, http):
    body = adyen.pay("4000002500003155").json()
    page = http.get(f"{body['action']['url']}&outcome=failed", allow_redirects=False, timeout=5)
    [redirect_result] = parse_qs(urlparse(page.headers["Location"]).query)["redirectResult"]

    details = adyen.post("/v71/payments/details", {"details": {"redirectResult": redirect_result}})

    assert details.json()["resultCode"] == "Refused"
    assert details.json()["refusalReasonCode"] == "11"


def test_capture_refund_and_cancel_answer_received(adyen, control, connector):
    authorised = adyen.pay(amount=5000, manual_capture=True).json()
    reference = authorised["pspReference"]

    capture = adyen.post(
        f"/v71/payments/{reference}/captures",
        {"merchantAccount": "SimShop", "amount": {"value": 5000, "currency": "EUR"}},
    )
    assert capture.status_code == 201
    assert capture.json()["status"] == "received"
    assert capture.json()["paymentPspReference"] == reference
    assert capture.json()["pspReference"] != reference

    refund = adyen.post(
        f"/v71/payments/{reference}/refunds",
        {
            "merchantAccount": "SimShop",
            "amount": {"value": 2000, "currency": "EUR"},
            "reference": "re_ours_1",
        },
    )
    assert refund.status_code == 201
    assert refund.json()["reference"] == "re_ours_1"
    [charge] = control.charges(connector)
    assert (charge["amount_captured"], charge["amount_refunded"]) == (5000, 2000)
    [stored] = control.refunds(connector)
    assert (stored["status"], stored["reference"]) == ("succeeded", "re_ours_1")

    other = adyen.pay(manual_capture=True).json()
    cancel = adyen.post(
        f"/v71/payments/{other['pspReference']}/cancels", {"merchantAccount": "SimShop"}
    )
    assert cancel.status_code == 201
    statuses = {c["id"]: c["status"] for c in control.charges(connector)}
    assert statuses[other["pspReference"]] == "canceled"


def test_modification_of_an_unknown_payment_is_422(adyen):
    response = adyen.post(
        "/v71/payments/AAAAAAAAAAAAAAAA/captures",
        {"merchantAccount": "SimShop", "amount": {"value": 1, "currency": "EUR"}},
    )

    assert response.status_code == 422
    assert response.json()["errorType"] == "validation"


def test_missing_reference_is_a_validation_error(adyen):
    body = adyen.payment_body()
    del body["reference"]

    response = adyen.post("/v71/payments", body)

    assert response.status_code == 422
    assert response.json()["errorCode"] == "130"


def test_missing_api_key_is_401(adyen, http):
    response = http.post(f"{adyen.base_url}/v71/payments", json=adyen.payment_body(), timeout=5)

    assert response.status_code == 401
    assert response.json()["errorType"] == "security"


def test_idempotent_resend_returns_the_first_answer_and_charges_once(adyen, control, connector):
    key = str(uuid.uuid4())
    body = adyen.payment_body(reference="pa_idem")

    first = adyen.post("/v71/payments", body, key=key)
    second = adyen.post("/v71/payments", body, key=key)

    assert second.json() == first.json()
    assert second.headers["Idempotency-Key"] == key
    assert len(control.charges(connector, reference="pa_idem")) == 1


def test_technical_cancel_by_reference(adyen, control, connector):
    adyen.pay(manual_capture=True, reference="pa_lost_answer")

    response = adyen.post(
        "/v71/cancels", {"merchantAccount": "SimShop", "paymentReference": "pa_lost_answer"}
    )

    assert response.status_code == 201
    assert [c["status"] for c in control.charges(connector)] == ["canceled"]
