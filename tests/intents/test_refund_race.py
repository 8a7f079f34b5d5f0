import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.intents.models import PaymentIntent, Refund

pytestmark = pytest.mark.usefixtures("connectors")


@pytest.mark.django_db(transaction=True)
def test_racing_refunds_never_exceed_the_received_amount(pay, secret_key):
    intent_id = pay(amount=1000).json()["id"]
    barrier = threading.Barrier(6)
    statuses = []

    def refund():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret_key}")
        barrier.wait()
        statuses.append(
            client.post(
                "/v1/refunds", {"payment_intent": intent_id, "amount": 300}, format="json"
            ).status_code
        )
        connection.close()

    threads = [threading.Thread(target=refund) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert statuses.count(200) == 3  # 3 x 300 <= 1000 < 4 x 300
    assert set(statuses) == {200, 400}
    intent = PaymentIntent.objects.get(public_id=intent_id)
    assert intent.amount_refunded == 900
    assert sum(Refund.objects.filter(intent=intent).values_list("amount", flat=True)) == 900


def test_the_database_refuses_an_over_refund_even_without_the_service(pay):
    from django.db import IntegrityError, transaction

    intent = PaymentIntent.objects.get(public_id=pay(amount=1000).json()["id"])
    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentIntent.objects.filter(pk=intent.pk).update(amount_refunded=1001)
