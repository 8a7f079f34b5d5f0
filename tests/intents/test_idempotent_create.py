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
    assert first.status_code == 400
    error = first.json()["error"]
    assert error["code"] == "no_eligible_connector"
    # the intent it created is named, so the merchant can confirm it once a PSP is back
    assert error["payment_intent"]["status"] == "requires_confirmation"

    again = pay()  # the merchant's retry, same key and body

    assert again.status_code == 400 and again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert PaymentIntent.objects.filter(merchant=merchant, amount=2700).count() == 1
