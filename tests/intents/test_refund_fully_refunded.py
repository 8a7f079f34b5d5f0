"""A refund without an amount on a fully refunded intent: a clean 409 `charge_already_refunded`
with nothing written, in the API (also under 20 concurrent full refunds) and in the admin."""

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.events.models import OutboxEvent
from apps.intents.models import PaymentIntent, Refund
from tests.factories import StaffUserFactory

pytestmark = pytest.mark.usefixtures("connectors")


def _refunded_intent(api, pay) -> str:
    intent_id = pay(amount=1500).json()["id"]
    first = api.post("/v1/refunds", {"payment_intent": intent_id}, format="json")
    assert first.status_code == 200, first.content
    assert first.json()["amount"] == 1500
    return intent_id


@pytest.mark.parametrize("body", [{}, {"amount": 1}, {"amount": 1500}])
def test_a_second_refund_of_a_fully_refunded_intent_is_refused(api, pay, body):
    intent_id = _refunded_intent(api, pay)
    events_before = OutboxEvent.objects.count()

    response = api.post("/v1/refunds", {"payment_intent": intent_id, **body}, format="json")

    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "charge_already_refunded"
    assert error["param"] == "payment_intent"
    assert Refund.objects.count() == 1
    assert PaymentIntent.objects.get(public_id=intent_id).amount_refunded == 1500
    assert OutboxEvent.objects.count() == events_before


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_full_refunds_make_one_refund_and_nineteen_clean_refusals(
    pay, secret_key
):
    intent_id = pay(amount=2000).json()["id"]
    barrier = threading.Barrier(20)
    responses = []
    lock = threading.Lock()

    def refund():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret_key}")
        client.raise_request_exception = False
        try:
            barrier.wait()
            response = client.post("/v1/refunds", {"payment_intent": intent_id}, format="json")
            with lock:
                responses.append((response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=refund) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    statuses = sorted(status for status, _ in responses)
    assert statuses == [200] + [409] * 19, responses
    refused = [body["error"] for status, body in responses if status == 409]
    assert {(e["code"], e["param"]) for e in refused} == {
        ("charge_already_refunded", "payment_intent")
    }
    assert Refund.objects.filter(intent__public_id=intent_id).count() == 1
    assert Refund.objects.get(intent__public_id=intent_id).amount == 2000
    assert PaymentIntent.objects.get(public_id=intent_id).amount_refunded == 2000


def test_admin_refund_with_the_empty_default_amount_shows_a_form_error(
    client, staff_roles, merchant, api, pay
):
    intent = PaymentIntent.objects.get(public_id=_refunded_intent(api, pay))
    client.force_login(StaffUserFactory(role="finance", serves=[merchant]))
    client.raise_request_exception = False

    page = client.post(f"/admin/intents/paymentintent/{intent.pk}/refund/", {"amount": ""})

    assert page.status_code == 200
    html = page.content.decode()
    assert "already been fully refunded" in html
    assert "errorlist" in html  # on the form, not a debug page
    assert "Traceback" not in html and "IntegrityError" not in html
    assert Refund.objects.count() == 1
