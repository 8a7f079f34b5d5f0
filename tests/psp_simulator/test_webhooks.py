"""Webhooks back to the platform: signatures, event types, delay, duplication, reordering."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

import pytest
import requests

pytestmark = pytest.mark.slow

STRIPE_SECRET = "whsec_test_simulator_secret"
ADYEN_HMAC_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"


def verify_stripe_signature(header: str, body: bytes, secret: str, tolerance: int = 300) -> None:
    """Stripe's documented check, written out independently of the simulator's code."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    timestamp = int(parts["t"])
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert abs(time.time() - timestamp) < tolerance


def verify_adyen_hmac(item: dict, hex_key: str) -> None:
    fields = [
        item.get("pspReference", ""),
        item.get("originalReference", ""),
        item.get("merchantAccountCode", ""),
        item.get("merchantReference", ""),
        str(item["amount"]["value"]),
        item["amount"]["currency"],
        item["eventCode"],
        item["success"],
    ]
    digest = hmac.new(
        binascii.unhexlify(hex_key), ":".join(fields).encode(), hashlib.sha256
    ).digest()
    assert item["additionalData"]["hmacSignature"] == base64.b64encode(digest).decode()


def _events(received) -> list[tuple[str, str]]:
    return [(w.json()["type"], w.json()["data"]["object"]["id"]) for w in received]


def test_stripe_events_are_signed_and_follow_the_payment(stripe, control, connector, receiver):
    control.register_webhook(connector, receiver.url, STRIPE_SECRET, "stripe")

    intent = stripe.create_intent(capture_method="manual", key="idem_wh_1").json()
    stripe.post(f"/v1/payment_intents/{intent['id']}/capture")
    stripe.post("/v1/refunds", {"payment_intent": intent["id"], "amount": "500"})

    received = receiver.wait_for(4)
    for webhook in received:
        verify_stripe_signature(webhook.headers["stripe-signature"], webhook.body, STRIPE_SECRET)
        assert webhook.path == "/webhooks/psp/mca_test"
    events = [w.json() for w in received]
    assert [e["type"] for e in events] == [
        "payment_intent.amount_capturable_updated",
        "payment_intent.succeeded",
        "refund.created",
        "charge.refunded",
    ]
    first = events[0]
    assert first["object"] == "event"
    assert first["id"].startswith("evt_")
    assert first["data"]["object"]["id"] == intent["id"]
    assert first["data"]["object"]["metadata"]["attempt_id"].startswith("pa_")
    assert first["request"]["idempotency_key"] == "idem_wh_1"
    assert events[3]["data"]["object"]["amount_refunded"] == 500


def test_stripe_decline_and_cancel_events(stripe, control, connector, receiver):
    control.register_webhook(connector, receiver.url, STRIPE_SECRET)

    stripe.create_intent("4000000000000002")
    intent = stripe.create_intent(capture_method="manual").json()
    stripe.post(f"/v1/payment_intents/{intent['id']}/cancel")

    types = [t for t, _ in _events(receiver.wait_for(3))]
    assert types == [
        "payment_intent.payment_failed",
        "payment_intent.amount_capturable_updated",
        "payment_intent.canceled",
    ]


def test_adyen_notifications_carry_a_valid_hmac(adyen, control, connector, receiver):
    control.register_webhook(connector, receiver.url, ADYEN_HMAC_KEY, "adyen")

    payment = adyen.pay(amount=3000, manual_capture=True, reference="pa_notify").json()
    reference = payment["pspReference"]
    adyen.post(
        f"/v71/payments/{reference}/captures",
        {"merchantAccount": "SimShop", "amount": {"value": 3000, "currency": "EUR"}},
    )
    adyen.post(
        f"/v71/payments/{reference}/refunds",
        {"merchantAccount": "SimShop", "amount": {"value": 9999, "currency": "EUR"}},
    )
    adyen.pay("4000000000009995", reference="pa_refused")

    received = receiver.wait_for(4)
    items = []
    for webhook in received:
        envelope = webhook.json()
        assert envelope["live"] == "false"
        [wrapper] = envelope["notificationItems"]
        item = wrapper["NotificationRequestItem"]
        verify_adyen_hmac(item, ADYEN_HMAC_KEY)
        items.append(item)
    summary = [(i["eventCode"], i["success"], i.get("originalReference", "")) for i in items]
    assert summary[:3] == [
        ("AUTHORISATION", "true", ""),
        ("CAPTURE", "true", reference),
        ("REFUND", "false", reference),  # more than was captured
    ]
    assert (items[3]["eventCode"], items[3]["success"], items[3]["reason"]) == (
        "AUTHORISATION",
        "false",
        "Not enough balance",
    )
    authorisation = items[0]
    assert authorisation["pspReference"] == reference
    assert authorisation["merchantReference"] == "pa_notify"
    assert authorisation["merchantAccountCode"] == "SimShop"
    assert authorisation["amount"] == {"currency": "EUR", "value": 3000}


def test_no_webhook_without_a_registered_target(stripe, control, connector, receiver):
    stripe.create_intent()
    time.sleep(0.3)

    assert receiver.received == []
    assert control.webhook_deliveries(connector) == []


def test_unregistering_stops_deliveries(stripe, control, connector, receiver):
    control.register_webhook(connector, receiver.url, STRIPE_SECRET)
    stripe.create_intent()
    receiver.wait_for(1)

    control.unregister_webhook(connector)
    stripe.create_intent()
    time.sleep(0.3)

    assert len(receiver.received) == 1


def test_duplication_delivers_the_same_event_twice(stripe, control, connector, receiver):
    control.register_webhook(connector, receiver.url, STRIPE_SECRET, duplicate_rate=1.0)

    stripe.create_intent()

    first, second = receiver.wait_for(2)
    assert first.json()["id"] == second.json()["id"]
    assert [d["duplicate"] for d in control.webhook_deliveries(connector)] == [False, True]


def test_reordering_shuffles_a_full_window(stripe, control, connector, receiver):
    control.register_webhook(connector, receiver.url, STRIPE_SECRET, reorder_window=4, seed=3)

    created = [stripe.create_intent(attempt_id=f"pa_{i}").json()["id"] for i in range(4)]

    received = [object_id for _, object_id in _events(receiver.wait_for(4))]
    assert sorted(received) == sorted(created)
    assert received != created


def test_a_part_filled_window_is_released_after_the_hold_time(stripe, control, connector, receiver):
    control.register_webhook(
        connector, receiver.url, STRIPE_SECRET, reorder_window=10, reorder_max_hold_ms=300
    )

    stripe.create_intent()
    stripe.create_intent()
    started = time.monotonic()

    receiver.wait_for(2, timeout=5)
    assert time.monotonic() - started >= 0.2


def test_flush_releases_a_held_window_at_once(stripe, control, connector, receiver):
    control.register_webhook(
        connector, receiver.url, STRIPE_SECRET, reorder_window=10, reorder_max_hold_ms=60_000
    )
    stripe.create_intent()

    assert control.flush_webhooks(connector) == 1
    receiver.wait_for(1, timeout=5)


def test_delay_holds_each_event_back(stripe, control, connector, receiver):
    control.register_webhook(connector, receiver.url, STRIPE_SECRET, delay_ms=600)

    stripe.create_intent()
    sent = time.monotonic()

    [webhook] = receiver.wait_for(1)
    assert webhook.received_at - sent >= 0.5


def test_switches_change_at_run_time(stripe, control, connector, receiver):
    control.register_webhook(connector, receiver.url, STRIPE_SECRET)
    stripe.create_intent()
    receiver.wait_for(1)

    control.update_webhook(connector, duplicate_rate=1.0)
    stripe.create_intent()

    assert len(receiver.wait_for(3)) == 3


def test_failed_deliveries_are_retried_with_backoff(stripe, control, connector, receiver):
    receiver.fail_next = 2
    control.register_webhook(connector, receiver.url, STRIPE_SECRET, retry_backoff_ms=50)

    stripe.create_intent()

    receiver.wait_for(1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        [delivery] = control.webhook_deliveries(connector)
        if delivery["status"] == "delivered":
            break
        time.sleep(0.05)
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 3)


def test_a_target_for_another_dialect_gets_nothing(stripe, control, connector, receiver):
    control.register_webhook(connector, receiver.url, ADYEN_HMAC_KEY, "adyen")

    stripe.create_intent()
    time.sleep(0.3)

    assert receiver.received == []


def test_registration_is_validated_and_secrets_are_masked(simulator_url, control, connector):
    url = f"{simulator_url}/_sim/connectors/{connector}/webhook"

    not_hex = requests.put(
        url, json={"url": "http://x/", "secret": "nothex", "dialect": "adyen"}, timeout=5
    )
    no_url = requests.put(url, json={"secret": "whsec_x"}, timeout=5)
    typo = requests.put(url, json={"url": "http://x/", "dupliate_rate": 1}, timeout=5)

    assert [not_hex.status_code, no_url.status_code, typo.status_code] == [400, 400, 400]
    control.register_webhook(connector, "http://127.0.0.1:9/hook", STRIPE_SECRET)
    shown = requests.get(url, timeout=5).json()["webhook"]
    assert shown["secret"] != STRIPE_SECRET
    assert shown["url"] == "http://127.0.0.1:9/hook"


def test_failing_refund_and_delayed_payout_events(stripe, control, connector, receiver):
    control.update_settings(connector, async_outcome_delay_ms=100)
    control.register_webhook(connector, receiver.url, STRIPE_SECRET)
    intent = stripe.create_intent("4000000000005126").json()

    stripe.post("/v1/refunds", {"payment_intent": intent["id"], "metadata[refund_id]": "re_x"})
    stripe.post("/v1/payouts", {"amount": "9902", "currency": "eur", "destination": "ba_1"})

    events = [w.json() for w in receiver.wait_for(6)]
    types = [e["type"] for e in events]
    assert types[:2] == ["payment_intent.succeeded", "refund.created"]
    assert sorted(types[2:]) == sorted(
        ["payout.created", "refund.failed", "refund.updated", "payout.paid"]
    )
    failed = next(e for e in events if e["type"] == "refund.failed")["data"]["object"]
    assert (failed["status"], failed["metadata"]) == ("failed", {"refund_id": "re_x"})
    assert types.index("payout.created") < types.index("payout.paid")


def test_adyen_cancellation_notifications(adyen, control, connector, receiver):
    control.register_webhook(connector, receiver.url, ADYEN_HMAC_KEY, "adyen")
    authorised = adyen.pay(manual_capture=True).json()
    captured = adyen.pay().json()  # automatic capture: too late to cancel

    for payment in (authorised, captured):
        adyen.post(
            f"/v71/payments/{payment['pspReference']}/cancels",
            {"merchantAccount": "SimShop", "reference": f"cancel-{payment['pspReference']}"},
        )

    items = [
        w.json()["notificationItems"][0]["NotificationRequestItem"] for w in receiver.wait_for(4)
    ]
    cancellations = [i for i in items if i["eventCode"] == "CANCELLATION"]
    assert [(i["originalReference"], i["success"]) for i in cancellations] == [
        (authorised["pspReference"], "true"),
        (captured["pspReference"], "false"),
    ]
    assert cancellations[0]["merchantReference"] == f"cancel-{authorised['pspReference']}"
    for item in items:
        verify_adyen_hmac(item, ADYEN_HMAC_KEY)
