"""The Stripe dialect over real HTTP: PaymentIntents, declines, 3-D Secure, refunds, payouts."""

from __future__ import annotations

import time
import uuid
from urllib.parse import parse_qs, urlparse

import pytest

from apps.psp_simulator import cards

pytestmark = pytest.mark.slow


def test_approved_card_with_automatic_capture_succeeds(stripe, control, connector):
    response = stripe.create_intent("4242424242424242", amount=2500, attempt_id="pa_ok")

    assert response.status_code == 200
    intent = response.json()
    assert intent["object"] == "payment_intent"
    assert intent["id"].startswith("pi_")
    assert intent["status"] == "succeeded"
    assert intent["amount_received"] == 2500
    assert intent["amount_capturable"] == 0
    assert intent["latest_charge"].startswith("ch_")
    assert intent["metadata"] == {"attempt_id": "pa_ok"}
    assert intent["next_action"] is None
    assert response.headers["Request-Id"].startswith("req_")
    charges = control.charges(connector, reference="pa_ok")
    assert [(c["status"], c["amount_captured"], c["last4"]) for c in charges] == [
        ("captured", 2500, "4242")
    ]


@pytest.mark.parametrize("number", ["5555555555554444", "378282246310005"])
def test_mastercard_and_amex_approve(stripe, number):
    response = stripe.create_intent(number)

    assert response.status_code == 200
    assert response.json()["status"] == "succeeded"


DECLINES = [card for card in cards.TEST_CARDS if card.outcome == cards.DECLINE]


@pytest.mark.parametrize("card", DECLINES, ids=lambda card: card.decline_code)
def test_decline_cards_answer_402_card_error_with_stripe_codes(stripe, stripe_retrieve, card):
    response = stripe.create_intent(card.number)

    assert response.status_code == 402
    error = response.json()["error"]
    assert error["type"] == "card_error"
    assert error["code"] == card.stripe_code
    if card.stripe_code == "card_declined":
        assert error["decline_code"] == card.decline_code
    else:
        assert "decline_code" not in error
    assert error["message"] == card.stripe_message
    assert error["charge"].startswith("ch_")
    intent = error["payment_intent"]
    assert intent["status"] == "requires_payment_method"
    assert intent["last_payment_error"]["code"] == card.stripe_code
    # the declined intent is stored: a status inquiry sees the same state
    assert stripe_retrieve(intent["id"])["status"] == "requires_payment_method"


@pytest.fixture
def stripe_retrieve(stripe):
    def retrieve(intent_id: str) -> dict:
        response = stripe.get(f"/v1/payment_intents/{intent_id}")
        assert response.status_code == 200
        return response.json()

    return retrieve


def test_luhn_invalid_number_is_incorrect_number(stripe):
    response = stripe.create_intent("4242424242424241")

    assert response.status_code == 402
    assert response.json()["error"]["code"] == "incorrect_number"


def test_past_expiry_is_invalid_expiry_year(stripe):
    response = stripe.create_intent(
        "4242424242424242", **{"payment_method_data[card][exp_year]": "2020"}
    )

    assert response.status_code == 402
    assert response.json()["error"]["code"] == "invalid_expiry_year"


def test_manual_capture_then_partial_capture_releases_the_rest(stripe, control, connector):
    intent = stripe.create_intent(amount=5000, capture_method="manual").json()
    assert intent["status"] == "requires_capture"
    assert intent["amount_capturable"] == 5000

    captured = stripe.post(
        f"/v1/payment_intents/{intent['id']}/capture", {"amount_to_capture": "3000"}
    )

    assert captured.status_code == 200
    body = captured.json()
    assert (body["status"], body["amount_received"], body["amount_capturable"]) == (
        "succeeded",
        3000,
        0,
    )
    [charge] = control.charges(connector)
    assert (charge["status"], charge["amount_captured"]) == ("captured", 3000)


def test_capture_more_than_capturable_is_refused(stripe):
    intent = stripe.create_intent(amount=1000, capture_method="manual").json()

    response = stripe.post(
        f"/v1/payment_intents/{intent['id']}/capture", {"amount_to_capture": "1001"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "amount_too_large"


def test_capture_of_a_succeeded_intent_is_an_unexpected_state(stripe):
    intent = stripe.create_intent().json()

    response = stripe.post(f"/v1/payment_intents/{intent['id']}/capture")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "payment_intent_unexpected_state"
    assert error["type"] == "invalid_request_error"
    assert error["payment_intent"]["status"] == "succeeded"


def test_cancel_an_authorization(stripe, control, connector):
    intent = stripe.create_intent(capture_method="manual").json()

    response = stripe.post(
        f"/v1/payment_intents/{intent['id']}/cancel",
        {"cancellation_reason": "requested_by_customer"},
    )

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "canceled"
    assert body["cancellation_reason"] == "requested_by_customer"
    assert body["amount_capturable"] == 0
    assert [c["status"] for c in control.charges(connector)] == ["canceled"]


def test_cancel_after_capture_is_refused(stripe):
    intent = stripe.create_intent().json()

    response = stripe.post(f"/v1/payment_intents/{intent['id']}/cancel")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "payment_intent_unexpected_state"


def test_partial_then_full_refunds_and_over_refund(stripe, control, connector):
    intent = stripe.create_intent(amount=3000).json()

    first = stripe.post(
        "/v1/refunds",
        {"payment_intent": intent["id"], "amount": "1000", "metadata[refund_id]": "re_ours_1"},
    )
    assert first.status_code == 200
    refund = first.json()
    assert refund["object"] == "refund"
    assert refund["id"].startswith("re_")
    assert (refund["status"], refund["amount"], refund["payment_intent"]) == (
        "succeeded",
        1000,
        intent["id"],
    )
    assert refund["metadata"] == {"refund_id": "re_ours_1"}
    assert stripe.get(f"/v1/refunds/{refund['id']}").json()["status"] == "succeeded"

    too_much = stripe.post("/v1/refunds", {"payment_intent": intent["id"], "amount": "2001"})
    assert too_much.status_code == 400
    assert too_much.json()["error"]["code"] == "amount_too_large"

    rest = stripe.post("/v1/refunds", {"payment_intent": intent["id"]})
    assert rest.json()["amount"] == 2000
    again = stripe.post("/v1/refunds", {"payment_intent": intent["id"]})
    assert again.json()["error"]["code"] == "charge_already_refunded"

    [charge] = control.charges(connector)
    assert charge["amount_refunded"] == 3000
    charge_object = stripe.get(f"/v1/charges/{intent['latest_charge']}").json()
    assert charge_object["refunded"] is True
    assert charge_object["refunds"]["total_count"] == 2


def test_refund_of_an_uncaptured_intent_is_refused(stripe):
    intent = stripe.create_intent(capture_method="manual").json()

    response = stripe.post("/v1/refunds", {"payment_intent": intent["id"]})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "charge_not_refundable"


def test_three_ds_card_requires_action_then_completes(stripe, control, connector, http):
    response = stripe.create_intent(
        "4000002500003155", capture_method="manual", return_url="https://shop.example/back"
    )

    assert response.status_code == 200
    intent = response.json()
    assert intent["status"] == "requires_action"
    assert intent["next_action"]["type"] == "redirect_to_url"
    redirect = intent["next_action"]["redirect_to_url"]
    assert redirect["return_url"] == "https://shop.example/back"
    assert control.charges(connector) == []  # nothing authorised before authentication

    page = http.get(f"{redirect['url']}&outcome=succeeded", allow_redirects=False, timeout=5)

    assert page.status_code == 302
    back = urlparse(page.headers["Location"])
    assert back.netloc == "shop.example"
    assert parse_qs(back.query)["redirect_status"] == ["succeeded"]
    after = stripe.get(f"/v1/payment_intents/{intent['id']}").json()
    assert after["status"] == "requires_capture"
    assert after["next_action"] is None
    assert [c["status"] for c in control.charges(connector)] == ["authorized"]


def test_three_ds_failure_leaves_requires_payment_method(stripe, http):
    intent = stripe.create_intent("4000000000003220").json()
    assert intent["next_action"]["type"] == "use_stripe_sdk"  # no return_url given
    url = intent["next_action"]["use_stripe_sdk"]["stripe_js"]

    http.get(f"{url}&outcome=failed", timeout=5)

    after = stripe.get(f"/v1/payment_intents/{intent['id']}").json()
    assert after["status"] == "requires_payment_method"
    assert after["last_payment_error"]["code"] == "payment_intent_authentication_failure"


def test_three_ds_card_off_session_is_declined_authentication_required(stripe):
    response = stripe.create_intent("4000002500003155", off_session="true")

    assert response.status_code == 402
    assert response.json()["error"]["decline_code"] == "authentication_required"


def test_search_by_attempt_id_finds_the_intent(stripe):
    attempt_id = f"pa_{uuid.uuid4().hex[:8]}"
    created = stripe.create_intent(attempt_id=attempt_id).json()
    stripe.create_intent()  # another attempt that must not match

    response = stripe.get(
        "/v1/payment_intents/search", {"query": f"metadata['attempt_id']:'{attempt_id}'"}
    )

    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "search_result"
    assert [pi["id"] for pi in body["data"]] == [created["id"]]


def test_search_with_an_unparsable_query_is_a_400(stripe):
    response = stripe.get("/v1/payment_intents/search", {"query": "attempt_id = 3"})

    assert response.status_code == 400


def test_unknown_intent_is_resource_missing(stripe):
    response = stripe.get("/v1/payment_intents/pi_doesnotexist")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "resource_missing"


@pytest.mark.parametrize(
    "authorization", [None, "Bearer pk_test_publishable", "Bearer nonsense"], ids=str
)
def test_requests_without_a_secret_key_get_a_401(stripe, http, authorization):
    headers = {"Authorization": authorization} if authorization else {}

    response = http.post(
        f"{stripe.base_url}/v1/payment_intents", data={"amount": "100"}, headers=headers
    )

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_missing_amount_is_parameter_missing(stripe):
    response = stripe.post("/v1/payment_intents", {"currency": "eur"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("parameter_missing", "amount")


def test_idempotent_replay_returns_the_stored_response_without_a_second_charge(
    stripe, control, connector
):
    key = f"idem_{uuid.uuid4().hex}"
    first = stripe.create_intent(attempt_id="pa_replay", key=key)

    second = stripe.create_intent(attempt_id="pa_replay", key=key)

    assert second.status_code == first.status_code == 200
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["Original-Request"] == first.headers["Request-Id"]
    assert len(control.charges(connector, reference="pa_replay")) == 1


def test_idempotent_replay_of_a_decline_replays_the_402(stripe, control, connector):
    key = f"idem_{uuid.uuid4().hex}"
    first = stripe.create_intent("4000000000009995", attempt_id="pa_d", key=key)

    second = stripe.create_intent("4000000000009995", attempt_id="pa_d", key=key)

    assert second.status_code == 402
    assert second.content == first.content
    assert len(control.charges(connector)) == 1


def test_same_key_with_different_parameters_is_an_idempotency_error(stripe, control, connector):
    key = f"idem_{uuid.uuid4().hex}"
    stripe.create_intent(amount=1000, attempt_id="pa_x", key=key)

    response = stripe.create_intent(amount=2000, attempt_id="pa_x", key=key)

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "idempotency_error"
    assert len(control.charges(connector)) == 1


def test_same_key_on_another_endpoint_is_an_idempotency_error(stripe):
    key = f"idem_{uuid.uuid4().hex}"
    intent = stripe.create_intent(key=key).json()

    response = stripe.post("/v1/refunds", {"payment_intent": intent["id"]}, key=key)

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "idempotency_error"


def test_validation_failures_are_not_stored_under_the_key(stripe):
    key = f"idem_{uuid.uuid4().hex}"
    invalid = stripe.post("/v1/payment_intents", {"currency": "eur"}, key=key)
    assert invalid.status_code == 400

    response = stripe.create_intent(key=key)

    assert response.status_code == 200


def test_concurrent_request_with_a_key_in_flight_gets_409(stripe, simulator_url, connector):
    """The slow card keeps the first request in flight for ~3 s."""
    import threading

    key = f"idem_{uuid.uuid4().hex}"
    slow = next(c for c in cards.TEST_CARDS if c.outcome == cards.SLOW_APPROVE)
    results = {}

    def first_request():
        results["first"] = stripe.create_intent(slow.number, key=key, attempt_id="pa_slow")

    thread = threading.Thread(target=first_request)
    started = time.monotonic()
    thread.start()
    time.sleep(0.5)
    second = stripe.create_intent(slow.number, key=key, attempt_id="pa_slow")
    thread.join()

    assert second.status_code == 409
    assert second.json()["error"]["code"] == "idempotency_key_in_use"
    assert results["first"].status_code == 200
    assert time.monotonic() - started >= 2.5  # the slow card really was slow


def test_refund_fails_asynchronously_for_the_refund_failure_card(stripe, control, connector):
    control.update_settings(connector, async_outcome_delay_ms=200)
    intent = stripe.create_intent("4000000000005126").json()

    refund = stripe.post("/v1/refunds", {"payment_intent": intent["id"]}).json()

    assert refund["status"] == "pending"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status = stripe.get(f"/v1/refunds/{refund['id']}").json()["status"]
        if status != "pending":
            break
        time.sleep(0.05)
    assert status == "failed"
    assert stripe.get(f"/v1/payment_intents/{intent['id']}").json()["amount_received"] == 1999


@pytest.mark.parametrize(
    ("amount", "destination", "immediate", "final", "failure_code"),
    [
        (5000, "ba_seller_1", "paid", "paid", None),
        (9902, "ba_seller_1", "pending", "paid", None),
        (9903, "ba_seller_1", "pending", "failed", "could_not_process"),
        (5000, "ba_000111111116", "pending", "failed", "no_account"),
    ],
)
def test_payout_outcomes(
    stripe, control, connector, amount, destination, immediate, final, failure_code
):
    control.update_settings(connector, async_outcome_delay_ms=100)

    response = stripe.post(
        "/v1/payouts",
        {"amount": str(amount), "currency": "eur", "destination": destination},
        key=f"po_{uuid.uuid4().hex}",
    )

    assert response.status_code == 200
    payout = response.json()
    assert payout["id"].startswith("po_")
    assert payout["status"] == immediate
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        current = stripe.get(f"/v1/payouts/{payout['id']}").json()
        if current["status"] == final:
            break
        time.sleep(0.05)
    assert (current["status"], current["failure_code"]) == (final, failure_code)


def test_payout_magic_amount_is_rejected_at_once(stripe):
    response = stripe.post("/v1/payouts", {"amount": "9901", "currency": "eur"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "balance_insufficient"
