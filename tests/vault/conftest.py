"""Vault fixtures: clients for publishable, live and other-merchant keys, and a tokenize helper."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.core import crypto
from tests.factories import ApiKeyFactory

VISA = "4242424242424242"


def card_payload(number=VISA, exp_month=12, exp_year=2034, cvc="123", **extra) -> dict:
    card = {"number": number, "exp_month": exp_month, "exp_year": exp_year}
    if cvc is not None:
        card["cvc"] = cvc
    return {"type": "card", "card": card, **extra}


def _client(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


@pytest.fixture
def pk_api(publishable_key) -> APIClient:
    return _client(publishable_key)


@pytest.fixture
def other_api(other_merchant) -> APIClient:
    return _client(ApiKeyFactory(merchant=other_merchant).raw_key)


@pytest.fixture
def live_api(merchant) -> APIClient:
    merchant.live_enabled = True  # switched on by staff once onboarded
    merchant.save(update_fields=["live_enabled"])
    return _client(ApiKeyFactory(merchant=merchant, livemode=True).raw_key)


@pytest.fixture
def tokenize(api):
    """POSTs a card with the secret key and returns the 201 body."""

    def _tokenize(number=VISA, **kwargs) -> dict:
        response = api.post("/v1/payment_methods", card_payload(number, **kwargs), format="json")
        assert response.status_code == 201, response.content
        return response.json()

    return _tokenize


@pytest.fixture
def keyring_reset():
    """Clears the cached keyring before and after a test that overrides the keys."""
    crypto.reset_keyring_cache()
    yield
    crypto.reset_keyring_cache()
