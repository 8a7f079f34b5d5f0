"""SCA / 3-D Secure decisions end to end through the adapters and the simulator, in both
dialects: a request_3ds rule, the merchant's request_three_d_secure, exemptions (low value
within its cumulative limits, TRA, merchant-initiated) as each PSP spells them, SCA required,
the authentication result and liability shift on the attempt, and bad exemption requests."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests
from rest_framework.test import APIClient

from apps.intents.models import PaymentIntent

DE_CARD = "4000002760000016"  # issued in Germany (the vault's BIN table)
SHOP = "https://shop.example/done"
EXEMPTION_SPELLING = {
    "stripe": {"low_value": "low_risk", "transaction_risk_analysis": "low_risk"},
    "adyen": {"low_value": "lowValue", "transaction_risk_analysis": "transactionRiskAnalysis"},
}


@pytest.fixture
def eea_merchant(merchant):
    merchant.country = "DE"
    merchant.save(update_fields=["country"])
    return merchant


def _complete_3ds(body: dict, outcome: str = "succeeded") -> dict:
    page = body["next_action"]["redirect_to_url"]["url"]
    answer = requests.get(f"{page}&outcome={outcome}", allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    APIClient().get(f"{back.path}?{back.query}")
    return body


def _attempt(api, intent_id: str) -> dict:
    return api.get(f"/v1/payment_intents/{intent_id}", {"expand[]": "attempts"}).json()


def _charge(sim, connector) -> dict:
    charges = sim.charges(connector.simulator_account)
    return charges[-1]


def test_a_request_3ds_rule_sends_the_shopper_through_3ds(api, pay, rule, sim, dialect_connector):
    asking = rule("request_3ds", ":amount: >= 5000")
    body = pay(amount=5000, return_url=SHOP).json()
    assert body["status"] == "requires_action"
    _complete_3ds(body)
    intent = _attempt(api, body["id"])
    assert intent["status"] == "succeeded"
    record = intent["attempts"][0]["three_d_secure"]
    assert (record["requested"], record["reason"], record["rule"]) == ("any", "rule", asking["id"])
    assert (record["result"], record["liability_shift"]) == ("authenticated", True)
    charge = _charge(sim, dialect_connector)
    assert (charge["three_d_secure"], charge["authenticated"]) == ("any", True)
    # under the rule's amount: no 3DS, the Visa test card being US-issued (SCA does not apply)
    assert pay(amount=4000).json()["status"] == "succeeded"


def test_the_merchant_asks_for_a_challenge(api, pay, sim, dialect_connector):
    body = pay(
        return_url=SHOP, payment_method_options={"card": {"request_three_d_secure": "challenge"}}
    ).json()
    assert body["payment_method_options"]["card"]["request_three_d_secure"] == "challenge"
    _complete_3ds(body, "failed")
    intent = _attempt(api, body["id"])
    assert intent["status"] == "requires_payment_method"
    assert intent["attempts"][0]["three_d_secure"]["result"] == "failed"
    assert intent["attempts"][0]["three_d_secure"]["liability_shift"] is False


def test_exemptions_in_both_dialects(api, pay, sim, eea_merchant, dialect_connector):
    spelling = EXEMPTION_SPELLING[dialect_connector.connector_type]
    low = pay(number=DE_CARD, amount=2000).json()
    assert low["status"] == "succeeded"
    record = _attempt(api, low["id"])["attempts"][0]["three_d_secure"]
    assert (record["exemption"], record["result"], record["liability_shift"]) == (
        "low_value",
        "exempted",
        False,
    )
    assert _charge(sim, dialect_connector)["sca_exemption"] == spelling["low_value"]

    tra = pay(number=DE_CARD, amount=8000).json()
    assert tra["status"] == "succeeded"
    assert _attempt(api, tra["id"])["attempts"][0]["three_d_secure"]["exemption"] == (
        "transaction_risk_analysis"
    )
    assert (
        _charge(sim, dialect_connector)["sca_exemption"] == (spelling["transaction_risk_analysis"])
    )

    # above the TRA band, SCA applies: 3DS is requested
    big = pay(number=DE_CARD, amount=20000, return_url=SHOP).json()
    assert big["status"] == "requires_action"
    record = _attempt(api, big["id"])["attempts"][0]["three_d_secure"]
    assert (record["requested"], record["reason"]) == ("any", "sca_required")


def test_low_value_exemptions_stop_at_the_cumulative_limit(
    api, pay, eea_merchant, stripe_connector
):
    exemptions = []
    for _ in range(6):
        body = pay(number=DE_CARD, amount=1000).json()
        exemptions.append(_attempt(api, body["id"])["attempts"][0]["three_d_secure"]["exemption"])
    assert exemptions == ["low_value"] * 5 + ["transaction_risk_analysis"]


def test_merchant_initiated_payments_in_both_dialects(pay, sim, eea_merchant, dialect_connector):
    body = pay(
        number=DE_CARD,
        amount=50000,
        payment_method_options={"card": {"sca_exemption": "merchant_initiated"}},
    ).json()
    assert body["status"] == "succeeded"
    expected = {"stripe": "off_session", "adyen": "ContAuth"}[dialect_connector.connector_type]
    assert _charge(sim, dialect_connector)["sca_exemption"] == expected


@pytest.mark.parametrize(
    ("amount", "currency", "options"),
    [
        (5000, "eur", {"sca_exemption": "low_value"}),
        (1000, "usd", {"sca_exemption": "low_value"}),
        (50000, "eur", {"sca_exemption": "transaction_risk_analysis"}),
        (1000, "eur", {"sca_exemption": "low_value", "request_three_d_secure": "any"}),
    ],
)
def test_an_exemption_where_it_is_not_allowed_is_refused(api, tokenize, amount, currency, options):
    response = api.post(
        "/v1/payment_intents",
        {
            "amount": amount,
            "currency": currency,
            "payment_method": tokenize(),
            "payment_method_options": {"card": options},
        },
        format="json",
    )
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (
        "sca_exemption_not_allowed",
        "payment_method_options[card][sca_exemption]",
    )
    assert not PaymentIntent.objects.exists()
