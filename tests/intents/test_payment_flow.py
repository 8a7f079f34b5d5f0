"""Create, confirm, capture, cancel and refund through the API, against the real simulator."""

import pytest

from apps.events.models import OutboxEvent
from apps.intents.models import PaymentAttempt, PaymentIntent, Refund

pytestmark = pytest.mark.usefixtures("connectors")


def test_automatic_capture_succeeds_and_records_the_attempt(
    pay, stripe_connector, sim, connector_names
):
    response = pay(amount=1999, order_id="order-1")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "succeeded"
    assert body["amount_received"] == 1999
    assert body["amount_capturable"] == 0
    assert body["connector"] == stripe_connector.public_id
    assert body["psp_reference"]

    attempt = PaymentAttempt.objects.get(intent__public_id=body["id"])
    assert attempt.outcome == "approved"
    assert attempt.connector == stripe_connector
    assert attempt.psp_idempotency_key.startswith(attempt.public_id)
    assert attempt.psp_reference == body["psp_reference"]
    assert attempt.latency_ms is not None and attempt.completed_at is not None
    charges = sim.charges(connector_names["stripe"])
    assert len(charges) == 1


def test_manual_capture_then_partial_capture_releases_the_rest(api, pay):
    created = pay(amount=5000, capture_method="manual").json()
    assert created["status"] == "requires_capture"
    assert created["amount_capturable"] == 5000
    captured = api.post(
        f"/v1/payment_intents/{created['id']}/capture", {"amount_to_capture": 3000}, format="json"
    )
    assert captured.status_code == 200, captured.content
    body = captured.json()
    assert body["status"] == "succeeded"
    assert body["amount_received"] == 3000
    assert body["amount_capturable"] == 0


def test_cancel_an_authorization(api, pay):
    created = pay(amount=5000, capture_method="manual").json()
    canceled = api.post(
        f"/v1/payment_intents/{created['id']}/cancel",
        {"cancellation_reason": "requested_by_customer"},
        format="json",
    )
    assert canceled.status_code == 200, canceled.content
    assert canceled.json()["status"] == "canceled"
    assert canceled.json()["cancellation_reason"] == "requested_by_customer"


def test_create_without_confirm_then_confirm(api, tokenize):
    created = api.post("/v1/payment_intents", {"amount": 1500, "currency": "usd"}, format="json")
    assert created.status_code == 200
    assert created.json()["status"] == "requires_payment_method"
    intent_id = created.json()["id"]
    missing = api.post(f"/v1/payment_intents/{intent_id}/confirm", {}, format="json")
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "payment_intent_payment_method_missing"
    confirmed = api.post(
        f"/v1/payment_intents/{intent_id}/confirm", {"payment_method": tokenize()}, format="json"
    )
    assert confirmed.status_code == 200, confirmed.content
    assert confirmed.json()["status"] == "succeeded"


def test_hard_decline_is_a_402_without_failover(pay):
    response = pay(number="4000000000009987")  # lost_card
    assert response.status_code == 402, response.content
    error = response.json()["error"]
    assert error["type"] == "card_error"
    assert error["decline_code"] == "lost_card"
    assert error["payment_intent"]["status"] == "requires_payment_method"
    intent = PaymentIntent.objects.get(public_id=error["payment_intent"]["id"])
    assert intent.attempts.count() == 1  # never tried on the second connector


def test_soft_decline_fails_over_to_the_next_connector(pay, adyen_connector):
    response = pay(number="4000000000000002")  # generic_decline, soft: declined everywhere
    assert response.status_code == 402
    intent = PaymentIntent.objects.get(public_id=response.json()["error"]["payment_intent"]["id"])
    attempts = list(intent.attempts.order_by("sequence"))
    assert [a.outcome for a in attempts] == ["soft_decline", "soft_decline"]
    assert attempts[1].connector == adyen_connector
    assert attempts[1].routing_trace["skipped"]  # the first connector: already tried


def test_outage_on_the_first_connector_fails_over(pay, sim, connector_names, adyen_connector):
    sim.faults(connector_names["stripe"], outage=True)
    response = pay()
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "succeeded"
    assert response.json()["connector"] == adyen_connector.public_id
    intent = PaymentIntent.objects.get(public_id=response.json()["id"])
    assert [a.outcome for a in intent.attempts.order_by("sequence")] == ["error", "approved"]
    assert sim.charges(connector_names["stripe"]) == []
    assert len(sim.charges(connector_names["adyen"])) == 1


def test_requires_action_for_3ds_cards(pay):
    response = pay(number="4000002500003155")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "requires_action"
    assert body["next_action"]


def test_idempotent_create_and_confirm_charges_once(pay, sim, connector_names, api, tokenize):
    pm = tokenize()
    body = {"amount": 700, "currency": "eur", "payment_method": pm, "confirm": True}
    first = api.post("/v1/payment_intents", body, format="json", HTTP_IDEMPOTENCY_KEY="order-77")
    second = api.post("/v1/payment_intents", body, format="json", HTTP_IDEMPOTENCY_KEY="order-77")
    assert first.content == second.content
    assert second["Idempotent-Replayed"] == "true"
    assert PaymentIntent.objects.count() == 1
    assert len(sim.charges(connector_names["stripe"])) == 1


def test_every_state_change_writes_an_ordered_outbox_event(pay, api):
    intent_id = pay(capture_method="manual").json()["id"]
    api.post(f"/v1/payment_intents/{intent_id}/capture", {}, format="json")
    events = list(OutboxEvent.objects.filter(object_id=intent_id).order_by("sequence"))
    assert [e.event_type for e in events] == [
        "payment_intent.created",
        "payment_intent.processing",
        "payment_intent.amount_capturable_updated",
        "payment_intent.succeeded",
    ]
    assert [e.sequence for e in events] == [1, 2, 3, 4]
    assert events[-1].payload["status"] == "succeeded"
    assert events[-1].previous_attributes["status"] == "processing"


def test_partial_refunds_up_to_the_received_amount(api, pay):
    intent_id = pay(amount=3000).json()["id"]
    first = api.post("/v1/refunds", {"payment_intent": intent_id, "amount": 1000}, format="json")
    assert first.status_code == 200, first.content
    assert first.json()["status"] in ("succeeded", "pending")
    second = api.post("/v1/refunds", {"payment_intent": intent_id, "amount": 2000}, format="json")
    assert second.status_code == 200
    over = api.post("/v1/refunds", {"payment_intent": intent_id, "amount": 1}, format="json")
    assert over.status_code == 409  # nothing left to refund, whatever the amount
    assert over.json()["error"]["code"] == "charge_already_refunded"
    intent = api.get(f"/v1/payment_intents/{intent_id}").json()
    assert intent["amount_refunded"] == 3000
    listed = api.get("/v1/refunds", {"payment_intent": intent_id}).json()
    assert len(listed["data"]) == 2
    assert api.get(f"/v1/refunds/{first.json()['id']}").json()["amount"] == 1000


def test_list_filters_and_paginates(api, pay):
    ids = [pay(amount=100 + i, order_id=f"o-{i % 2}").json()["id"] for i in range(5)]
    page = api.get("/v1/payment_intents", {"limit": 2}).json()
    assert [i["id"] for i in page["data"]] == ids[::-1][:2]
    assert page["has_more"] is True
    rest = api.get(
        "/v1/payment_intents", {"limit": 10, "starting_after": page["data"][-1]["id"]}
    ).json()
    assert [i["id"] for i in rest["data"]] == ids[::-1][2:]
    assert rest["has_more"] is False
    by_order = api.get("/v1/payment_intents", {"order_id": "o-1"}).json()["data"]
    assert {i["order_id"] for i in by_order} == {"o-1"} and len(by_order) == 2
    by_status = api.get("/v1/payment_intents", {"status": "succeeded"}).json()["data"]
    assert len(by_status) == 5
    bad = api.get("/v1/payment_intents", {"status": "nope"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "status"


def test_expanded_intent_shows_attempts_with_routing(api, pay):
    intent_id = pay().json()["id"]
    body = api.get(f"/v1/payment_intents/{intent_id}", {"expand[]": "attempts"}).json()
    assert len(body["attempts"]) == 1
    assert body["attempts"][0]["routing"]["candidates"]


def test_the_list_expands_attempts_in_one_query_per_page(
    api, pay, sim, connector_names, django_assert_max_num_queries
):
    sim.faults(connector_names["stripe"], outage=True)  # every payment fails over to Adyen
    ids = [pay(amount=300 + i).json()["id"] for i in range(4)]
    plain = api.get("/v1/payment_intents", {"limit": 3}).json()["data"]
    assert all("attempts" not in i for i in plain)

    with django_assert_max_num_queries(3):  # key, page, the page's attempts: not one per intent
        page = api.get("/v1/payment_intents", {"limit": 3, "expand[]": "attempts"}).json()
    assert [i["id"] for i in page["data"]] == ids[::-1][:3]
    for intent in page["data"]:
        attempts = intent["attempts"]
        assert [(a["sequence"], a["connector_name"], a["outcome"]) for a in attempts] == [
            (1, connector_names["stripe"], "error"),
            (2, connector_names["adyen"], "approved"),
        ]
        assert attempts[1]["routing"]["confirm_attempt"] == 2
    rest = api.get(
        "/v1/payment_intents",
        {"starting_after": page["data"][-1]["id"], "expand[]": "attempts"},
    ).json()["data"]
    assert [i["id"] for i in rest] == [ids[0]] and len(rest[0]["attempts"]) == 2

    bad = api.get("/v1/payment_intents", {"expand[]": "refunds"})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"].startswith("expand")


def test_other_merchants_intents_are_not_found(pay, other_merchant):
    from rest_framework.test import APIClient

    from tests.factories import ApiKeyFactory

    intent_id = pay().json()["id"]
    key = ApiKeyFactory(merchant=other_merchant).raw_key
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert other.get(f"/v1/payment_intents/{intent_id}").status_code == 404
    assert (
        other.post("/v1/refunds", {"payment_intent": intent_id}, format="json").status_code == 404
    )
    assert Refund.objects.count() == 0
