"""A create-and-confirm that wrote its intent and then failed is answered the same way to a
retry with the same Idempotency-Key: the retry never creates a second intent for the order."""

import pytest

from apps.intents.models import PaymentIntent


@pytest.mark.django_db(transaction=True)  # the intent's commit is what makes the answer final
def test_a_confirm_that_found_no_connector_is_replayed_not_run_again(
    api, tokenize, merchant, stripe_connector, system_actor
):
    from apps.connectors import services as connector_services

    connector_services.connector_breaker_force(
        connector=stripe_connector, mode="open", actor=system_actor
    )
    body = {"amount": 2700, "currency": "eur", "payment_method": tokenize(), "confirm": True}

    def pay():
        return api.post("/v1/payment_intents", body, format="json", HTTP_IDEMPOTENCY_KEY="o-77")

    first = pay()
    assert first.status_code == 503  # its only PSP is out for a while, not a bad request
    error = first.json()["error"]
    assert error["code"] == "psp_unavailable"
    # the intent it created is named, so the merchant can confirm it once a PSP is back
    assert error["payment_intent"]["status"] == "requires_confirmation"

    again = pay()  # the merchant's retry, same key and body

    assert again.status_code == 503 and again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert PaymentIntent.objects.filter(merchant=merchant, amount=2700).count() == 1


def _as_if_the_worker_died(key: str, *, minutes_ago: int = 10) -> None:
    """The record as a request killed before it stored its answer leaves it: still in progress,
    its lock older than the takeover timeout."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.core.models import IdempotencyRecord

    updated = IdempotencyRecord.objects.filter(key=key).update(
        status=IdempotencyRecord.Status.IN_PROGRESS,
        response_status=None,
        response_body=None,
        locked_at=timezone.now() - timedelta(minutes=minutes_ago),
    )
    assert updated == 1


@pytest.mark.django_db(transaction=True)
def test_a_payment_interrupted_after_it_charged_is_never_run_again(
    api, tokenize, merchant, stripe_connector
):
    """A web worker killed after the PSP charged and before the answer was stored: the client's
    retry with the same key, after the takeover timeout, must not create a second intent and
    charge the card again. It is told what the first request changed."""
    from apps.intents.models import PaymentAttempt

    body = {"amount": 3100, "currency": "eur", "payment_method": tokenize(), "confirm": True}
    first = api.post("/v1/payment_intents", body, format="json", HTTP_IDEMPOTENCY_KEY="o-81")
    assert first.status_code == 200 and first.json()["status"] == "succeeded"
    _as_if_the_worker_died("o-81")

    retry = api.post("/v1/payment_intents", body, format="json", HTTP_IDEMPOTENCY_KEY="o-81")

    assert retry.status_code == 409
    error = retry.json()["error"]
    assert error["type"] == "idempotency_error"
    assert error["code"] == "idempotency_request_interrupted"
    assert error["param"] == "Idempotency-Key"
    assert error["objects"] == [first.json()["id"]]
    assert first.json()["id"] in error["message"]
    assert PaymentIntent.objects.filter(merchant=merchant, amount=3100).count() == 1
    assert PaymentAttempt.objects.filter(intent__merchant=merchant, amount=3100).count() == 1
    # and so it stays: a later retry gets the same answer
    again = api.post("/v1/payment_intents", body, format="json", HTTP_IDEMPOTENCY_KEY="o-81")
    assert again.status_code == 409 and again.json()["error"]["objects"] == error["objects"]


@pytest.mark.django_db(transaction=True)
def test_a_refund_interrupted_after_it_began_is_never_sent_twice(
    api, tokenize, merchant, stripe_connector
):
    from apps.intents.models import Refund

    paid = api.post(
        "/v1/payment_intents",
        {"amount": 5000, "currency": "eur", "payment_method": tokenize(), "confirm": True},
        format="json",
    ).json()
    body = {"payment_intent": paid["id"], "amount": 1000}
    first = api.post("/v1/refunds", body, format="json", HTTP_IDEMPOTENCY_KEY="r-81")
    assert first.status_code == 200
    _as_if_the_worker_died("r-81")

    retry = api.post("/v1/refunds", body, format="json", HTTP_IDEMPOTENCY_KEY="r-81")

    assert retry.status_code == 409
    assert retry.json()["error"]["code"] == "idempotency_request_interrupted"
    assert first.json()["id"] in retry.json()["error"]["objects"]
    assert Refund.objects.filter(intent__public_id=paid["id"]).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_request_that_died_before_changing_anything_is_taken_over(
    api, tokenize, merchant, stripe_connector
):
    """Killed before its first write committed: nothing happened, so the retry runs it."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.core.models import IdempotencyRecord

    body = {"amount": 3200, "currency": "eur", "payment_method": tokenize(), "confirm": True}
    first = api.post("/v1/payment_intents", body, format="json", HTTP_IDEMPOTENCY_KEY="o-82")
    record = IdempotencyRecord.objects.get(key="o-82")
    # the same fingerprint under a claim whose request wrote nothing (another request id)
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        key="o-83", request_id="req_killed_before_any_write"
    )
    _as_if_the_worker_died("o-83")
    fresh = api.post("/v1/payment_intents", body, format="json", HTTP_IDEMPOTENCY_KEY="o-83")

    assert fresh.status_code == 200 and fresh.json()["status"] == "succeeded"
    assert fresh.json()["id"] != first.json()["id"]
    assert IdempotencyRecord.objects.get(key="o-83").status == IdempotencyRecord.Status.COMPLETED
    assert timezone.now() - IdempotencyRecord.objects.get(key="o-83").locked_at < timedelta(
        minutes=1
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["create_confirm", "confirm"])
def test_an_approved_payments_answer_commits_with_its_state_and_replays_byte_for_byte(
    path, api, tokenize, merchant, stripe_connector
):
    """tx B of an approval stores the request's answer in its own statement: the record is
    complete as soon as the payment is, with the bytes the client received."""
    from apps.core.models import IdempotencyRecord

    body = {"amount": 3300, "currency": "eur", "payment_method": tokenize()}
    if path == "create_confirm":
        url, body = "/v1/payment_intents", {**body, "confirm": True}
    else:
        created = api.post("/v1/payment_intents", body, format="json").json()
        url, body = f"/v1/payment_intents/{created['id']}/confirm", {}

    first = api.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=f"o-9{path}")

    assert first.status_code == 200 and first.json()["status"] == "succeeded"
    record = IdempotencyRecord.objects.get(key=f"o-9{path}")
    assert record.status == IdempotencyRecord.Status.COMPLETED
    assert (record.response_status, bytes(record.response_body)) == (200, first.content)
    replay = api.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=f"o-9{path}")
    assert replay["Idempotent-Replayed"] == "true" and replay.content == first.content
    assert PaymentIntent.objects.filter(merchant=merchant, amount=3300).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_declined_payments_answer_is_stored_after_it(api, tokenize, merchant, stripe_connector):
    """A decline is answered as an error envelope, which the view renders: stored then, as
    before, and replayed byte for byte."""
    from apps.core.models import IdempotencyRecord

    body = {
        "amount": 3400,
        "currency": "eur",
        "payment_method": tokenize("4000000000000002"),
        "confirm": True,
    }
    first = api.post("/v1/payment_intents", body, format="json", HTTP_IDEMPOTENCY_KEY="o-95")
    assert first.status_code == 402
    record = IdempotencyRecord.objects.get(key="o-95")
    assert (record.response_status, bytes(record.response_body)) == (402, first.content)
    replay = api.post("/v1/payment_intents", body, format="json", HTTP_IDEMPOTENCY_KEY="o-95")
    assert replay.status_code == 402 and replay.content == first.content
