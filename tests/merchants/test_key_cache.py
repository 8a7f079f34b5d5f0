"""The per-process API key cache (apps.merchants.key_cache): a known key is not read from the
database on every request, and a revocation, a roll or a merchant change reaches every process
at once; without its Redis subscription a process does not cache at all."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.core import invalidation
from apps.merchants import key_cache
from apps.merchants import services as merchant_services
from apps.merchants.domain import hash_api_key
from apps.merchants.models import ApiKey, Merchant


@pytest.fixture
def subscribed():
    key_cache.cache_clear()
    invalidation.listener.ensure_started()
    deadline = time.monotonic() + 5
    while not invalidation.listener.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert invalidation.listener.connected
    yield
    key_cache.cache_clear()


def _key_reads(api) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as captured:
        response = api.get("/v1/balance")
    reads = sum('FROM "merchants_apikey"' in q["sql"] for q in captured.captured_queries)
    return response.status_code, reads


@pytest.mark.django_db
def test_a_known_key_is_not_read_again(api, subscribed):
    assert _key_reads(api) == (200, 1)
    assert _key_reads(api) == (200, 0)
    assert _key_reads(api) == (200, 0)


@pytest.mark.django_db
def test_a_revoked_key_is_refused_at_once(api, secret_key, subscribed, system_actor):
    assert _key_reads(api)[0] == 200
    key = ApiKey.objects.get(key_hash=hash_api_key(secret_key))
    merchant_services.api_key_revoke(api_key=key, actor=system_actor)

    response = api.get("/v1/balance")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "api_key_revoked"


@pytest.mark.django_db
def test_a_change_published_by_another_process_drops_the_copy(api, secret_key, subscribed):
    assert _key_reads(api) == (200, 1)
    assert _key_reads(api) == (200, 0)
    # another process revoked it: its write bypasses this process, its message does not
    ApiKey.objects.filter(key_hash=hash_api_key(secret_key)).update(revoked_at=timezone.now())
    key_cache.checkout_redis(timeout=1).publish(
        invalidation.channel(key_cache.TOPIC), hash_api_key(secret_key)
    )
    deadline = time.monotonic() + 2
    while api.get("/v1/balance").status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert api.get("/v1/balance").status_code == 401


@pytest.mark.django_db
def test_switching_live_mode_off_reaches_cached_live_keys(merchant, subscribed, system_actor):
    from rest_framework.test import APIClient

    from tests.factories import ApiKeyFactory

    Merchant.objects.filter(pk=merchant.pk).update(live_enabled=True)
    merchant.refresh_from_db()
    live = APIClient()
    live.credentials(
        HTTP_AUTHORIZATION=f"Bearer {ApiKeyFactory(merchant=merchant, livemode=True).raw_key}"
    )
    assert live.get("/v1/balance").status_code == 200
    merchant.live_enabled = False
    merchant.save(update_fields=["live_enabled"])  # as the admin does

    response = live.get("/v1/balance")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "api_key_wrong_mode"


@pytest.mark.django_db
def test_without_the_subscription_nothing_is_cached(api, subscribed, monkeypatch):
    monkeypatch.setattr(invalidation.listener, "connected", False)
    assert _key_reads(api) == (200, 1)
    assert _key_reads(api) == (200, 1)


@pytest.mark.django_db
def test_each_request_gets_its_own_merchant_object(api, secret_key, subscribed):
    key_hash = hash_api_key(secret_key)
    api.get("/v1/balance")
    first, _ = key_cache.lookup(key_hash)
    first.merchant.name = "changed by one request"
    second, _ = key_cache.lookup(key_hash)
    assert second is not None and second.merchant.name != "changed by one request"
