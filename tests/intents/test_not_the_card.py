"""A payment that fails because the PSP refused the request itself (as malformed, or the
connector's credentials), or because no PSP was available, is not a card decline: the merchant
gets an api_error, ops get an error log, and the shopper is never told the card was declined."""

import logging

import pytest

from apps.events.models import OutboxEvent
from apps.intents.models import PaymentIntent


@pytest.fixture
def connector_of(request):
    def make(dialect: str):
        return request.getfixturevalue(f"{dialect}_connector")

    return make


@pytest.mark.parametrize("dialect", ["stripe", "adyen"])
@pytest.mark.parametrize(
    ("status", "code", "http"),
    [
        (401, "psp_authentication_failed", 502),
        (403, "psp_authentication_failed", 502),
        (400, "psp_request_invalid", 502),
        (422, "psp_request_invalid", 502),
        (429, "psp_unavailable", 503),
    ],
)
def test_a_request_the_psp_refused_is_not_a_card_decline(
    pay, sim, connector_names, connector_of, dialect, status, code, http, caplog
):
    connector_of(dialect)
    sim.faults(
        connector_names[dialect],
        rejected_rate=1.0,
        rejected_status=status,
        operations=["authorize"],
    )
    with caplog.at_level(logging.ERROR, logger="apps.intents.services"):
        response = pay(amount=3100)

    assert response.status_code == http, response.content
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("api_error", code)
    assert "declined" not in error["message"].lower()
    assert "decline_code" not in error
    intent = PaymentIntent.objects.get(public_id=error["payment_intent"]["id"])
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error["type"] == "api_error"
    assert intent.last_payment_error["code"] == code
    failed = OutboxEvent.objects.get(
        object_id=intent.public_id, event_type="payment_intent.payment_failed"
    )
    assert failed.payload["last_payment_error"]["type"] == "api_error"
    configuration_problem = status in (400, 401, 403, 422)
    assert any("check the connector's configuration" in r.message for r in caplog.records) is (
        configuration_problem
    )
    assert sim.charges(connector_names[dialect]) == []


def test_an_outage_everywhere_is_503_with_retry_after(pay, sim, connector_names, connectors):
    for name in connector_names.values():
        sim.faults(name, outage=True)
    response = pay()
    assert response.status_code == 503
    assert response["Retry-After"]
    assert response.json()["error"]["code"] == "psp_unavailable"


def test_a_refused_request_fails_over_and_the_next_connector_charges(
    pay, sim, connector_names, connectors
):
    sim.faults(connector_names["stripe"], rejected_rate=1.0, rejected_status=401)
    response = pay(amount=3200)
    assert response.status_code == 200 and response.json()["status"] == "succeeded"
    assert len(sim.charges(connector_names["adyen"])) == 1


def test_a_real_decline_is_still_a_card_error(pay, stripe_connector):
    response = pay(number="4000000000009995")
    assert response.status_code == 402
    error = response.json()["error"]
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error",
        "card_declined",
        "insufficient_funds",
    )
