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
    for garbage in ("pi_%00", "pi_%0d%0aSet-Cookie:x", "pi_" + "a" * 300, "%C3%A9"):
        response = APIClient().get(f"/v1/payment_intents/{garbage}/return")
        assert response.status_code == 404, garbage
        assert response.json()["error"]["code"] == "resource_missing"


# --------------------------------------------------------------------------- forged returns
# (issue 11, item 2) The return URL is public: anyone who knows an intent's id can call it with
# any query. Only what the PSP answers about this attempt's payment, applied to our state, may
# decide where the shopper goes and with which `redirect_status`.


def _return(intent_id: str, **query):
    return APIClient().get(f"/v1/payment_intents/{intent_id}/return", query)


def _status(intent_id: str) -> str:
    return PaymentIntent.objects.get(public_id=intent_id).status


@pytest.mark.usefixtures("connectors")
def test_a_forged_stripe_return_claiming_success_changes_nothing(pay, sim, connector_names):
    body = pay(number=THREE_DS_CARD, return_url=SHOP).json()
    other = pay(return_url=SHOP).json()  # a succeeded payment, to name in the forgery
    forged = _return(
        body["id"], redirect_status="succeeded", payment_intent=other["id"], redirectResult="x"
    )
    query = _shop_redirect(forged)
    assert query["payment_intent"] == [body["id"]]
    assert query["redirect_status"] == ["processing"]  # not confirmed: ask the API
    assert _status(body["id"]) == "requires_action"
    # the shopper really authenticates afterwards: it completes as usual
    assert _shop_redirect(APIClient().get(_authenticate(body, "succeeded")))["redirect_status"] == [
        "succeeded"
    ]
    assert len(sim.charges(connector_names["stripe"])) == 2


@pytest.mark.parametrize("other_outcome", ["succeeded", "failed"])
def test_another_payments_redirect_result_neither_authorizes_nor_fails_this_one(
    pay, adyen_connector, sim, connector_names, other_outcome
):
    mine = pay(number=THREE_DS_CARD, return_url=SHOP, amount=90_000).json()
    cheap = pay(number=THREE_DS_CARD, return_url=SHOP, amount=100).json()
    stolen = _authenticate(cheap, other_outcome)  # the attacker's own completed 3DS
    redirect_result = parse_qs(urlsplit(stolen).query)["redirectResult"][0]

    before = PaymentIntent.objects.get(public_id=mine["id"])
    replayed = _shop_redirect(_return(mine["id"], redirectResult=redirect_result))
    assert replayed["redirect_status"] == ["processing"]
    intent = PaymentIntent.objects.get(public_id=mine["id"])
    assert (intent.status, intent.psp_reference) == ("requires_action", before.psp_reference)
    assert intent.attempts.get().outcome == "requires_action"
    # each payment still completes with its own result
    assert _shop_redirect(APIClient().get(stolen))["redirect_status"] == [
        "succeeded" if other_outcome == "succeeded" else "failed"
    ]
    assert _shop_redirect(APIClient().get(_authenticate(mine, "succeeded")))["redirect_status"] == [
        "succeeded"
    ]
    assert _status(mine["id"]) == "succeeded"


@pytest.mark.parametrize(
    "faults",
    [
        {},  # a garbage redirectResult: Adyen answers 422
        {"error_rate": 1.0, "operations": ["authorize"]},  # 500 on /payments/details
        {"unavailable_rate": 1.0, "operations": ["authorize"]},  # 503
        {"timeout_rate": 1.0, "timeout_delay_s": 3, "operations": ["authorize"]},  # > 1.5 s
    ],
)
def test_a_psp_error_on_the_return_decides_nothing_and_is_never_a_500(
    pay, adyen_connector, sim, connector_names, faults
):
    body = pay(number=THREE_DS_CARD, return_url=SHOP).json()
    back = _authenticate(body, "succeeded")
    sim.faults(connector_names["adyen"], **faults)
    garbage = {} if faults else {"redirectResult": "Ab02b4c0!BQABAgCW5sxB4e%2F=="}
    query = parse_qs(urlsplit(back).query) if faults else garbage
    response = _return(
        body["id"], **{k: v[0] if isinstance(v, list) else v for k, v in query.items()}
    )
    assert _shop_redirect(response)["redirect_status"] == ["processing"]
    assert _status(body["id"]) == "requires_action"
    sim.faults(connector_names["adyen"])  # the PSP is back: the real return completes it
    assert _shop_redirect(APIClient().get(back))["redirect_status"] == ["succeeded"]


def test_an_adapter_exception_on_the_return_is_not_a_500(pay, api, adyen_connector, monkeypatch):
    from apps.psp_adapters.adyen import AdyenAdapter

    body = pay(number=THREE_DS_CARD, return_url=SHOP).json()
    back = _authenticate(body, "succeeded")

    def broken(self, request):
        raise RuntimeError("adapter bug")

    monkeypatch.setattr(AdyenAdapter, "retrieve", broken)
    assert _shop_redirect(APIClient().get(back))["redirect_status"] == ["processing"]
    confirm = api.post(f"/v1/payment_intents/{body['id']}/confirm", {}, format="json")
    assert (confirm.status_code, confirm.json()["status"]) == (200, "requires_action")
    monkeypatch.undo()
    assert _shop_redirect(APIClient().get(back))["redirect_status"] == ["succeeded"]


def test_a_return_on_a_connector_outside_the_allow_list_sends_nothing_and_is_not_a_500(
    pay, adyen_connector, sim, connector_names
):
    from apps.connectors.models import Connector

    body = pay(number=THREE_DS_CARD, return_url=SHOP).json()
    back = _authenticate(body, "succeeded")
    Connector.objects.filter(pk=adyen_connector.pk).update(endpoint="production")  # tampered
    assert _shop_redirect(APIClient().get(back))["redirect_status"] == ["processing"]
    assert _status(body["id"]) == "requires_action"
    Connector.objects.filter(pk=adyen_connector.pk).update(endpoint="simulator")
    assert _shop_redirect(APIClient().get(back))["redirect_status"] == ["succeeded"]


@pytest.mark.usefixtures("connectors")
@pytest.mark.parametrize(
    "bad",
    [
        "https://shop.example\\@evil.example/done",  # browsers read "\" as "/"
        "https://user:pw@shop.example/done",
        "https://shop.example@evil.example/done",
        "https://shop.example/do\x00ne",
        "https://shop.example/do ne",
        "java\tscript:alert(1)",
        "https://shop.example/do\nne",
        "https://shop.example:99999/done",
        "data:text/html,<script>alert(1)</script>",
        "//evil.example/done",
    ],
)
def test_return_urls_a_browser_could_read_differently_are_refused(api, tokenize, bad):
    response = api.post(
        "/v1/payment_intents",
        {"amount": 2000, "currency": "eur", "payment_method": tokenize(), "return_url": bad},
        format="json",
    )
    assert response.status_code == 400, (bad, response.content)
    assert response.json()["error"]["param"] == "return_url"
    assert not PaymentIntent.objects.exists()


@pytest.mark.usefixtures("connectors")
def test_our_parameters_go_into_the_query_before_the_fragment(pay):
    body = pay(number=THREE_DS_CARD, return_url="https://shop.example/pay?o=7#receipt").json()
    response = APIClient().get(_authenticate(body, "succeeded"))
    target = urlsplit(response["Location"])
    assert (target.path, target.fragment) == ("/pay", "receipt")
    assert parse_qs(target.query) == {
        "o": ["7"],
        "payment_intent": [body["id"]],
        "redirect_status": ["succeeded"],
    }
