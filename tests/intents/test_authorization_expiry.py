from datetime import timedelta

import pytest
from django.utils import timezone

from apps.intents.models import PaymentIntent
from apps.intents.tasks import expire_authorizations

pytestmark = pytest.mark.usefixtures("connectors")


def test_authorizations_older_than_the_window_are_canceled(pay, stripe_connector):
    old = pay(capture_method="manual").json()["id"]
    fresh = pay(capture_method="manual").json()["id"]
    PaymentIntent.objects.filter(public_id=old).update(
        authorized_at=timezone.now()
        - timedelta(days=stripe_connector.authorization_window_days, minutes=1)
    )
    assert expire_authorizations() == 1
    expired = PaymentIntent.objects.get(public_id=old)
    assert expired.status == "canceled" and expired.cancellation_reason == "expired"
    assert PaymentIntent.objects.get(public_id=fresh).status == "requires_capture"
