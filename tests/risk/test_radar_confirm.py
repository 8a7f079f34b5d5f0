"""Radar on the confirm path, end to end through the real adapters and the simulator: blocks
never reach a PSP, reviews are authorized and queued, allow beats block, and card-testing
bursts are stopped by the default rules once the merchant enables them."""

from __future__ import annotations

import pytest

from apps.events.models import OutboxEvent
from apps.intents.models import PaymentIntent
from apps.risk import services
from apps.risk.models import BlockedPayment, Review

DECLINE = "4000000000000002"  # generic_decline at the simulator


def _enable_default(api, key: str) -> None:
    rules = api.get("/v1/radar/rules", {"limit": 100}).json()["data"]
    rule = next(r for r in rules if r["default_rule"] == key)
    assert api.post(f"/v1/radar/rules/{rule['id']}", {"enabled": True}, format="json").json()[
        "enabled"
    ]


def test_block_is_a_fraudulent_decline_and_no_psp_is_called(pay, rule, sim, dialect_connector):
    blocking = rule("block", ":amount: > 100000")
    response = pay(amount=150000)
    assert response.status_code == 402
    error = response.json()["error"]
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error",
        "card_declined",
        "fraudulent",
    )
    intent = error["payment_intent"]
    assert intent["status"] == "requires_payment_method"
    assert intent["outcome"]["type"] == "blocked"
    assert intent["outcome"]["rule"]["id"] == blocking["id"]
    assert intent["outcome"]["reason"] == "rule"
    assert sim.charges(dialect_connector.simulator_account) == []
    assert not PaymentIntent.objects.get(public_id=intent["id"]).attempts.exists()
    blocked = BlockedPayment.objects.get()
    assert (blocked.payment_intent, blocked.rule) == (intent["id"], blocking["id"])

    # under the threshold the same merchant's payment goes through, outcome authorized
    ok = pay(amount=5000).json()
    assert (ok["status"], ok["outcome"]["type"], ok["outcome"]["rule"]) == (
        "succeeded",
        "authorized",
        None,
    )
    assert len(sim.charges(dialect_connector.simulator_account)) == 1


def test_review_authorizes_with_manual_capture_and_opens_a_review(
    api, pay, rule, dialect_connector
):
    reviewing = rule("review", ":amount: >= 9000")
    body = pay(amount=9000).json()
    assert (body["status"], body["capture_method"], body["amount_capturable"]) == (
        "requires_capture",
        "manual",
        9000,
    )
    assert body["outcome"]["type"] == "manual_review"
    attempts = api.get(f"/v1/payment_intents/{body['id']}", {"expand[]": "attempts"}).json()
    assert attempts["attempts"][0]["risk_outcome"]["rule"]["id"] == reviewing["id"]
    review = Review.objects.get(payment_intent=body["id"])
    assert (review.status, review.capture_on_approve) == ("open", True)
    assert OutboxEvent.objects.filter(event_type="review.opened", object_id=review.public_id)


def test_allow_beats_block_and_review(api, pay, rule, dialect_connector):
    value_list = api.post(
        "/v1/radar/value_lists",
        {"alias": "trusted_domains", "name": "Trusted", "item_type": "email_domain"},
        format="json",
    ).json()
    api.post(
        "/v1/radar/value_list_items",
        {"value_list": value_list["id"], "value": "friends.example"},
        format="json",
    )
    rule("block", ":amount: > 0")
    rule("review", ":amount: > 0")
    allowing = rule("allow", ":email_domain: in @trusted_domains")
    ok = pay(customer_email="ann@friends.example").json()
    assert (ok["status"], ok["outcome"]["type"], ok["outcome"]["rule"]["id"]) == (
        "succeeded",
        "authorized",
        allowing["id"],
    )
    other = pay(customer_email="bob@strangers.example")
    assert other.json()["error"]["decline_code"] == "fraudulent"


def test_review_approve_captures_and_reject_cancels(pay, rule, stripe_connector, system_actor):
    rule("review", ":amount: >= 9000")
    first, second = pay(amount=9000).json(), pay(amount=9100).json()

    services.review_approve(
        review=Review.objects.get(payment_intent=first["id"]), actor=system_actor
    )
    approved = PaymentIntent.objects.get(public_id=first["id"])
    assert (approved.status, approved.amount_received) == ("succeeded", 9000)

    services.review_reject(
        review=Review.objects.get(payment_intent=second["id"]), actor=system_actor
    )
    rejected = PaymentIntent.objects.get(public_id=second["id"])
    assert (rejected.status, rejected.cancellation_reason) == ("canceled", "fraudulent")
    assert list(Review.objects.order_by("id").values_list("status", flat=True)) == [
        "approved",
        "rejected",
    ]
    assert OutboxEvent.objects.filter(event_type="review.closed").count() == 2
    with pytest.raises(Exception, match="already closed"):
        services.review_reject(
            review=Review.objects.get(payment_intent=second["id"]), actor=system_actor
        )


def test_many_declines_on_one_card_are_blocked_after_the_threshold(api, pay, sim, stripe_connector):
    _enable_default(api, "card_testing_card")  # block if :declines_per_card_hourly: >= 5
    for _ in range(5):
        response = pay(number=DECLINE)
        assert response.json()["error"]["decline_code"] == "generic_decline"
    reached = len(sim.charges(stripe_connector.simulator_account))
    assert reached == 5
    for _ in range(3):
        response = pay(number=DECLINE)
        assert response.status_code == 402
        assert response.json()["error"]["decline_code"] == "fraudulent"
    assert len(sim.charges(stripe_connector.simulator_account)) == reached  # nothing more
    # another card is not affected
    assert pay(number="4242424242424242").json()["status"] == "succeeded"


def test_many_cards_from_one_ip_are_blocked_after_the_threshold(api, pay, sim, adyen_connector):
    _enable_default(api, "card_testing_ip")  # 5 cards from an IP in an hour, 3 declined
    ip = {"ip": "81.2.69.142"}
    cards = [
        "4000000000000002",
        "4000000000009995",
        "4000000000006975",
        "4242424242424242",
        "5555555555554444",
    ]
    for number in cards:
        pay(number=number, **ip)
    reached = len(sim.charges(adyen_connector.simulator_account))
    for number in ("4012888888881881", "2223003122003222"):
        response = pay(number=number, **ip)
        assert response.json()["error"]["decline_code"] == "fraudulent"
        assert response.json()["error"]["payment_intent"]["outcome"]["type"] == "blocked"
    assert len(sim.charges(adyen_connector.simulator_account)) == reached
    # the same cards from another IP are fine
    assert pay(number="4012888888881881", ip="8.8.8.8").status_code == 200


def test_ip_country_comes_from_the_header_and_is_scored(api, pay, stripe_connector):
    body = pay(number="4242424242424242", ip="8.8.8.8").json()
    stored = PaymentIntent.objects.get(public_id=body["id"]).risk_outcome
    assert stored["signals"]["ip_country"] == "US"
    assert stored["signals"]["ip_address"] == "8.8.8.8"
    # the simulator's Visa test card is issued in the US: no mismatch; no email: 5 points
    assert stored["score_contributions"] == {"email_missing": 5}
    assert body["outcome"]["risk_score"] == 5
    assert body["outcome"]["risk_level"] == "normal"
    bad = pay(ip="not-an-ip")
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "client_ip_invalid")


def test_a_review_closes_when_the_merchant_captures_or_cancels_first(
    api, pay, rule, stripe_connector
):
    rule("review", ":amount: >= 9000")
    first, second = pay(amount=9000).json(), pay(amount=9500).json()
    api.post(f"/v1/payment_intents/{first['id']}/capture", {}, format="json")
    api.post(f"/v1/payment_intents/{second['id']}/cancel", {}, format="json")
    assert list(Review.objects.order_by("id").values_list("status", "closed_by")) == [
        ("closed", "payment_captured"),
        ("closed", "payment_canceled"),
    ]
    assert OutboxEvent.objects.filter(event_type="review.closed").count() == 2


def test_stale_reviews_are_flagged(pay, rule, stripe_connector, settings):
    from datetime import timedelta

    from django.utils import timezone

    rule("review", ":amount: >= 9000")
    pay(amount=9000)
    review = Review.objects.get()
    assert not services.review_is_stale(review)
    later = timezone.now() + timedelta(seconds=settings.RISK_REVIEW_STALE_SECONDS + 1)
    assert services.review_is_stale(review, now=later)


def test_a_rule_is_tested_against_the_last_30_days(api, pay, rule, stripe_connector):
    for amount in (1000, 6000, 7000):
        pay(amount=amount, customer_email="x@example.com")
    candidate = rule("block", ":amount: > 5000 and :email_domain: = 'example.com'", enabled=False)
    result = api.post(f"/v1/radar/rules/{candidate['id']}/test", {"days": 30}, format="json").json()
    assert (result["payments"], result["matched"], result["would_block"]) == (3, 2, 2)
    assert result["would_review"] == 0
