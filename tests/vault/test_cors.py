"""A checkout page tokenizes cards from the browser with the publishable key: the browser's
CORS preflight and the POST must be allowed for /v1/payment_methods, and for nothing else."""

import pytest
from django.test import Client

from apps.vault.models import PaymentMethod

ORIGIN = "https://shop.example"

pytestmark = pytest.mark.django_db


def _preflight(path: str):
    return Client().options(
        path,
        HTTP_ORIGIN=ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type, idempotency-key",
    )


def test_the_preflight_for_tokenization_is_allowed_from_any_origin():
    response = _preflight("/v1/payment_methods")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    allowed = {h.strip() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in response


def test_a_cross_origin_tokenization_with_the_publishable_key_works(publishable_key):
    response = Client().post(
        "/v1/payment_methods",
        {
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        },
        content_type="application/json",
        HTTP_ORIGIN=ORIGIN,
        HTTP_AUTHORIZATION=f"Bearer {publishable_key}",
    )
    assert response.status_code == 201, response.content
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "Request-Id" in response["Access-Control-Expose-Headers"]
    assert PaymentMethod.objects.filter(public_id=response.json()["id"]).exists()


@pytest.mark.parametrize("path", ["/v1/payment_intents", "/v1/refunds", "/v1/account"])
def test_secret_key_endpoints_give_browsers_no_cors_grant(path):
    response = _preflight(path)
    assert "Access-Control-Allow-Origin" not in response
