"""GET /v1/events and /v1/events/{id}: the object as it was, what changed, who caused it."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from apps.events import relay
from apps.events.models import Event
from apps.events.services import outbox_record


def record(merchant, object_id, event_type, livemode=False, **payload):
    outbox_record(
        merchant_id=merchant.id,
        livemode=livemode,
        object_type=event_type.split(".")[0],
        object_id=object_id,
        event_type=event_type,
        payload={"id": object_id, **payload},
    )


@pytest.mark.usefixtures("connectors")
def test_an_api_call_produces_events_with_snapshot_changes_request_and_key(api, pay):
    response = pay(amount=1500, key="order-77-pay")
    assert response.status_code == 200, response.content
    intent_id = response.json()["id"]
    relay.outbox_relay()

    listed = api.get("/v1/events", {"object_id": intent_id})
    assert listed.status_code == 200
    events = listed.json()["data"]
    assert [e["type"] for e in reversed(events)] == [
        "payment_intent.created",
        "payment_intent.processing",
        "payment_intent.succeeded",
    ]
    succeeded = events[0]
    assert succeeded["id"].startswith("evt_")
    assert succeeded["object"] == "event"
    assert succeeded["livemode"] is False
    assert succeeded["sequence"] == 3
    assert succeeded["data"]["object"]["status"] == "succeeded"
    assert succeeded["data"]["object"]["amount_received"] == 1500
    assert succeeded["data"]["previous_attributes"] == {
        "status": "processing",
        "amount_capturable": 0,
    }
    assert succeeded["request"] == {"id": response["Request-Id"], "idempotency_key": "order-77-pay"}
    # the snapshot is the object as it was then, not as it is now
    created = events[-1]
    assert created["data"]["object"]["status"] == "requires_confirmation"

    retrieved = api.get(f"/v1/events/{succeeded['id']}")
    assert retrieved.status_code == 200
    assert retrieved.json() == succeeded


def test_filter_by_type_with_wildcards_and_created_range(api, merchant):
    start = timezone.now()
    with time_machine.travel(start - timedelta(hours=2), tick=False):
        record(merchant, "pi_old", "payment_intent.succeeded")
    with time_machine.travel(start, tick=False):
        record(merchant, "pi_new", "payment_intent.payment_failed")
        record(merchant, "re_1", "refund.succeeded")
    relay.outbox_relay()

    def types(**params):
        response = api.get("/v1/events", params)
        assert response.status_code == 200, response.content
        return sorted(e["type"] for e in response.json()["data"])

    assert types(type="refund.succeeded") == ["refund.succeeded"]
    assert types(type="payment_intent.*") == [
        "payment_intent.payment_failed",
        "payment_intent.succeeded",
    ]
    since = int((start - timedelta(minutes=1)).timestamp())
    assert types(**{"created[gte]": since}) == ["payment_intent.payment_failed", "refund.succeeded"]
    assert types(**{"created[lt]": since}) == ["payment_intent.succeeded"]


def test_cursor_pagination(api, merchant):
    for index in range(5):
        record(merchant, f"pi_{index}", "payment_intent.created")
    relay.outbox_relay()
    first = api.get("/v1/events", {"limit": 2}).json()
    assert first["has_more"] is True and len(first["data"]) == 2
    second = api.get("/v1/events", {"limit": 2, "starting_after": first["data"][-1]["id"]}).json()
    third = api.get("/v1/events", {"limit": 2, "starting_after": second["data"][-1]["id"]}).json()
    ids = [e["id"] for page in (first, second, third) for e in page["data"]]
    assert len(set(ids)) == 5 and third["has_more"] is False


def test_events_are_scoped_to_the_merchant_and_mode(api, merchant, other_merchant):
    record(other_merchant, "pi_theirs", "payment_intent.succeeded")
    record(merchant, "pi_live", "payment_intent.succeeded", livemode=True)
    record(merchant, "pi_mine", "payment_intent.succeeded")
    relay.outbox_relay()
    listed = api.get("/v1/events").json()["data"]
    assert [e["data"]["object"]["id"] for e in listed] == ["pi_mine"]
    theirs = Event.objects.get(object_id="pi_theirs")
    missing = api.get(f"/v1/events/{theirs.public_id}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "resource_missing"


@pytest.mark.parametrize(
    "params, param",
    [
        ({"limit": 0}, "limit"),
        ({"created[gte]": "yesterday"}, "created[gte]"),  # as the client spelled it
        ({"created_gte": "yesterday"}, "created_gte"),
        ({"unknown_cursor": "x", "starting_after": "evt_nope"}, "starting_after"),
    ],
)
def test_bad_list_parameters_are_clear_errors(api, params, param):
    response = api.get("/v1/events", params)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
