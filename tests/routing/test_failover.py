"""Failover through the real confirm path, the real adapters and the simulator: outages move
on to the next connector, hard declines and unknown outcomes never do, within the merchant's
attempt and time budgets; the breaker takes a failing connector out of the route."""

from __future__ import annotations

import pytest

from apps.connectors import health
from apps.connectors import selectors as connector_selectors
from apps.connectors import services as connector_services
from apps.intents.models import PaymentAttempt
from apps.psp_adapters.contract import Outcome, PSPResult
from apps.routing import services
from tests.factories import RoutingSettingsFactory

pytestmark = pytest.mark.django_db


def _attempts(intent_id: str) -> list[PaymentAttempt]:
    return list(
        PaymentAttempt.objects.filter(intent__public_id=intent_id)
        .select_related("connector")
        .order_by("sequence")
    )


def test_outage_on_a_fails_over_to_b_and_every_intent_succeeds(
    pay, sim, stripe_connector, adyen_connector, connector_names, api
):
    sim.faults(connector_names["stripe"], outage=True)  # 503: the PSP processed nothing
    bodies = [pay(amount=1000 + i) for i in range(8)]
    assert [b.status_code for b in bodies] == [200] * 8, bodies[0].content
    assert {b.json()["status"] for b in bodies} == {"succeeded"}
    assert {b.json()["connector"] for b in bodies} == {adyen_connector.public_id}

    first = _attempts(bodies[0].json()["id"])
    assert [(a.connector_id, a.outcome) for a in first] == [
        (stripe_connector.id, "error"),
        (adyen_connector.id, "approved"),
    ]
    assert first[1].routing_trace["skipped"][stripe_connector.public_id] == "already_tried"
    assert first[1].routing_trace["confirm_attempt"] == 2
    # after five failures in a row the breaker opened: A is skipped up front, one attempt only
    last = _attempts(bodies[-1].json()["id"])
    assert [a.connector_id for a in last] == [adyen_connector.id]
    assert last[0].routing_trace["skipped"][stripe_connector.public_id] == "breaker_open"
    assert not sim.charges(connector_names["stripe"])  # nothing was charged on A
    assert len(sim.charges(connector_names["adyen"])) == 8
    # the API shows the decision trace with the expanded attempts
    shown = api.get(
        f"/v1/payment_intents/{bodies[0].json()['id']}", {"expand[]": "attempts"}
    ).json()
    routing = shown["attempts"][1]["routing"]
    assert routing["candidates"][0]["connector"] == adyen_connector.public_id
    assert routing["skipped"] == {stripe_connector.public_id: "already_tried"}


def test_hard_declines_on_a_never_fail_over(
    pay, sim, stripe_connector, adyen_connector, connector_names
):
    for _ in range(3):
        response = pay(number="4000000000009987")  # lost_card: hard
        assert response.status_code == 402
        assert response.json()["error"]["decline_code"] == "lost_card"
        attempts = _attempts(response.json()["error"]["payment_intent"]["id"])
        assert [(a.connector_id, a.outcome) for a in attempts] == [
            (stripe_connector.id, "hard_decline")
        ]
    assert not sim.charges(connector_names["adyen"])
    # declines never trip the breaker
    assert health.breaker(stripe_connector.public_id).fail_counter == 0


def test_the_merchants_attempt_budget_bounds_failover(
    pay, merchant, stripe_connector, adyen_connector, sim, connector_names
):
    RoutingSettingsFactory(merchant=merchant, max_attempts=1)
    sim.faults(connector_names["stripe"], error_503_rate=1.0, limit=1)
    response = pay()
    assert response.status_code == 503  # the PSP was unavailable: not the card's fault
    assert response.json()["error"]["code"] == "psp_unavailable"
    assert [a.outcome for a in _attempts(response.json()["error"]["payment_intent"]["id"])] == [
        "error"
    ]


def test_a_soft_decline_moves_on_until_the_attempt_budget(
    pay, merchant, system_actor, stripe_connector, adyen_connector
):
    services.routing_settings_update(
        merchant=merchant, actor=system_actor, max_attempts=2, time_budget_seconds=None
    )
    response = pay(number="4000000000009995")  # insufficient_funds: soft, declines everywhere
    assert response.status_code == 402
    attempts = _attempts(response.json()["error"]["payment_intent"]["id"])
    assert [(a.connector_id, a.outcome) for a in attempts] == [
        (stripe_connector.id, "soft_decline"),
        (adyen_connector.id, "soft_decline"),
    ]


def test_the_merchants_time_budget_bounds_failover(
    pay, merchant, stripe_connector, adyen_connector, sim, connector_names
):
    RoutingSettingsFactory(merchant=merchant, time_budget_seconds=1)
    sim.faults(connector_names["stripe"], error_503_rate=1.0, latency_ms=1100)
    response = pay()
    assert response.status_code == 503  # budget spent on A: no second attempt
    assert len(_attempts(response.json()["error"]["payment_intent"]["id"])) == 1


def test_unknown_outcomes_never_fail_over(
    pay, sim, stripe_connector, adyen_connector, connector_names
):
    sim.faults(connector_names["stripe"], processed_then_500_rate=1.0, limit=1)
    response = pay()
    assert response.status_code == 200
    assert response.json()["status"] == "processing"
    assert [a.outcome for a in _attempts(response.json()["id"])] == ["unknown"]
    assert not sim.charges(connector_names["adyen"])


def test_a_breaker_that_opens_after_routing_refuses_without_sending_and_fails_over(
    pay, sim, stripe_connector, adyen_connector, connector_names, monkeypatch, system_actor
):
    # routing saw A closed (a stale view); by the time of the call its breaker is open
    connector_services.connector_breaker_force(
        connector=stripe_connector, mode="open", actor=system_actor
    )
    real = connector_selectors.breaker_snapshots
    monkeypatch.setattr(
        connector_selectors,
        "breaker_snapshots",
        lambda ids, extra_keys=(): {
            **{i: None for i in ids},
            **{"_extra": real([], extra_keys)["_extra"]},
        },
    )
    response = pay()
    assert response.status_code == 200
    attempts = _attempts(response.json()["id"])
    assert [(a.connector_id, a.outcome) for a in attempts] == [
        (stripe_connector.id, "error"),
        (adyen_connector.id, "approved"),
    ]
    assert attempts[0].raw_code == "circuit_forced_open"
    assert not sim.charges(connector_names["stripe"])


def _pay_in_yen(api, tokenize):
    return api.post(
        "/v1/payment_intents",
        {"amount": 500, "currency": "jpy", "payment_method": tokenize(), "confirm": True},
        format="json",
    )


def test_no_eligible_connector_says_why_each_was_excluded(
    api, tokenize, stripe_connector, adyen_connector, system_actor
):
    connector_services.connector_update(
        connector=stripe_connector, enabled=False, actor=system_actor
    )
    response = _pay_in_yen(api, tokenize)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "no_eligible_connector"
    assert error["routing"]["skipped"] == {
        stripe_connector.public_id: "disabled",
        adyen_connector.public_id: "currency_unsupported",
    }


@pytest.mark.parametrize("out", ["breaker_forced_open", "breaker_open", "disabled_auto"])
def test_no_connector_because_one_is_out_for_a_while_is_a_503(
    api, tokenize, stripe_connector, adyen_connector, system_actor, out
):
    """The one PSP that could take the payment is out (its breaker, or its error rate): not
    the merchant's request at fault but the platform briefly unable, so 503 psp_unavailable
    with Retry-After, the intent named, and the same trace."""
    if out == "breaker_forced_open":
        connector_services.connector_breaker_force(
            connector=stripe_connector, mode="open", actor=system_actor
        )
    elif out == "breaker_open":
        breaker = health.breaker(stripe_connector.public_id)
        for _ in range(health.breaker_settings()["fail_max"]):
            breaker.call(lambda: PSPResult(outcome=Outcome.ERROR, http_status=500))
    else:
        connector_services.connector_auto_disable(connector=stripe_connector, snapshot={})
    response = _pay_in_yen(api, tokenize)
    assert response.status_code == 503
    assert response["Retry-After"]
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("api_error", "psp_unavailable")
    assert error["payment_intent"]["status"] == "requires_confirmation"
    assert error["routing"]["skipped"] == {
        stripe_connector.public_id: out,
        adyen_connector.public_id: "currency_unsupported",
    }
