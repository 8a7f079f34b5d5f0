"""The shopper's return from a 3-D Secure redirect, through the real adapters and the
simulator's 3DS pages: the return URL completes the authorization (Stripe: by retrieving the
PSP's payment; Adyen: POST /payments/details with the redirectResult) and sends the browser on
to the merchant's `return_url`, or shows a short page."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from rest_framework.test import APIClient

from apps.core.errors import InvalidRequestError
from apps.intents import services
from apps.intents.models import PaymentIntent

THREE_DS_CARD = "4000002500003155"
SHOP = "https://shop.example/checkout/done?order=7"


def _authenticate(body: dict, outcome: str) -> str:
    """The shopper on the PSP's 3DS page: completes (or fails) it; returns where the PSP then
    sends the browser (our return URL, with what the PSP adds), as path and query."""
    page = body["next_action"]["redirect_to_url"]["url"]
    answer = requests.get(f"{page}&outcome={outcome}", allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    assert back.path == f"/v1/payment_intents/{body['id']}/return"
    return f"{back.path}?{back.query}"


def _shop_redirect(response) -> dict[str, list[str]]:
    assert response.status_code == 302, response.content
    target = urlsplit(response["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == SHOP.split("?")[0]
    return parse_qs(target.query)


@pytest.mark.usefixtures("connectors")
def test_stripe_3ds_return_completes_the_payment_and_sends_the_shopper_on(
    pay, api, sim, connector_names
):
    body = pay(number=THREE_DS_CARD, return_url=SHOP).json()
    assert (body["status"], body["return_url"]) == ("requires_action", SHOP)
    back = _authenticate(body, "succeeded")

    shopper = APIClient()  # a browser: no API key
    query = _shop_redirect(shopper.get(back))
    assert query == {
        "order": ["7"],
        "payment_intent": [body["id"]],
        "redirect_status": ["succeeded"],
    }
    intent = api.get(f"/v1/payment_intents/{body['id']}").json()
    assert (intent["status"], intent["amount_received"]) == ("succeeded", 2000)
    # a reload of the return page changes nothing and charges nothing more
    assert _shop_redirect(shopper.get(back))["redirect_status"] == ["succeeded"]
    assert len(sim.charges(connector_names["stripe"])) == 1


def test_adyen_3ds_return_completes_the_payment_with_payments_details(pay, api, adyen_connector):
    body = pay(number=THREE_DS_CARD, return_url=SHOP, capture_method="manual").json()
    assert body["status"] == "requires_action"
    back = _authenticate(body, "succeeded")
    assert "redirectResult=" in back

    query = _shop_redirect(APIClient().get(back))
    assert query["redirect_status"] == ["succeeded"]
    intent = api.get(f"/v1/payment_intents/{body['id']}", {"expand[]": "attempts"}).json()
    assert (intent["status"], intent["amount_capturable"]) == ("requires_capture", 2000)
    assert [a["outcome"] for a in intent["attempts"]] == ["approved"]


def test_a_failed_authentication_fails_the_payment_and_says_so(pay, api, adyen_connector):
    body = pay(number=THREE_DS_CARD, return_url=SHOP).json()
    back = _authenticate(body, "failed")

    assert _shop_redirect(APIClient().get(back))["redirect_status"] == ["failed"]
    intent = PaymentIntent.objects.get(public_id=body["id"])
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error["decline_code"] == "authentication_required"


@pytest.mark.usefixtures("connectors")
def test_without_a_return_url_the_shopper_sees_a_short_page(pay):
    body = pay(number=THREE_DS_CARD).json()
    assert body["return_url"] is None
    page = APIClient().get(_authenticate(body, "succeeded"))
    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/html")
    assert b"Payment succeeded" in page.content


@pytest.mark.usefixtures("connectors")
def test_bad_return_urls_and_unknown_intents(api, tokenize, merchant, system_actor):
    for bad in ("javascript:alert(1)", "shop.example/done", "ftp://shop.example/", "https://"):
        response = api.post(
            "/v1/payment_intents",
            {"amount": 2000, "currency": "eur", "payment_method": tokenize(), "return_url": bad},
            format="json",
        )
        assert response.status_code == 400, bad
        assert response.json()["error"]["param"] == "return_url"
    assert not PaymentIntent.objects.exists()  # nothing half-written
    with pytest.raises(InvalidRequestError) as refused:  # live mode: https only
        services.intent_create(
            merchant=merchant,
            livemode=True,
            amount=2000,
            currency="eur",
            actor=system_actor,
            return_url="http://shop.example/done",
        )
    assert refused.value.param == "return_url"

    missing = APIClient().get("/v1/payment_intents/pi_doesnotexist/return")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "invalid_request_error"
