import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from apps.core.idempotency import idempotency_purge_expired
from apps.core.models import AuditLogEntry, IdempotencyRecord
from apps.core.tasks import purge_expired_idempotency_records
from apps.merchants import services as merchant_services
from tests.factories import ApiKeyFactory


def post(api, body, key, path="/v1/account"):
    return api.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_replay_returns_the_stored_response_byte_for_byte(api, merchant):
    first = post(api, {"metadata": {"order": "1"}}, "key-1")
    assert first.status_code == 200
    merchant_services.merchant_update(merchant=merchant, actor=_actor(), name="Renamed")
    replay = post(api, {"metadata": {"order": "1"}}, "key-1")
    assert replay.status_code == 200
    assert replay.content == first.content  # the stored bytes, not a fresh render
    assert replay["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    # the replay executed nothing: one audit entry from the API, one from the direct rename
    assert AuditLogEntry.objects.filter(action="merchant.updated").count() == 2


def test_same_key_with_different_parameters_is_an_idempotency_error(api):
    assert post(api, {"name": "A"}, "key-2").status_code == 200
    response = post(api, {"name": "B"}, "key-2")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "idempotency_error"
    assert response.json()["error"]["code"] == "idempotency_key_reused"


def test_same_parameters_in_another_order_are_the_same_request(api):
    post(api, {"name": "A", "email": "a@example.com"}, "key-order")
    again = api.generic(
        "POST",
        "/v1/account",
        '{"email": "a@example.com",   "name": "A"}',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="key-order",
    )
    assert again["Idempotent-Replayed"] == "true"


def test_keys_are_scoped_by_merchant(api, other_merchant):
    post(api, {"name": "A"}, "shared-key")
    other_key = ApiKeyFactory(merchant=other_merchant).raw_key
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {other_key}")
    response = post(other, {"name": "B"}, "shared-key")
    assert response.status_code == 200
    assert "Idempotent-Replayed" not in response


def test_the_same_key_on_another_endpoint_is_refused(api):
    post(api, {"name": "A"}, "one-request-key")
    keys_before = AuditLogEntry.objects.filter(action="api_key.created").count()

    other_path = post(api, {"type": "publishable"}, "one-request-key", path="/v1/api_keys")

    assert other_path.status_code == 400
    error = other_path.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "idempotency_error",
        "idempotency_key_reused",
        "Idempotency-Key",
    )
    assert "POST /v1/account" in error["message"]
    assert AuditLogEntry.objects.filter(action="api_key.created").count() == keys_before
    # and the first request's answer is still what its key replays
    assert post(api, {"name": "A"}, "one-request-key")["Idempotent-Replayed"] == "true"


def test_a_503_before_any_effect_releases_the_key(publishable_key, settings):
    """Tokenization while Redis is away answers 503; the retry with the same key, once Redis is
    back, tokenizes instead of being answered the stored 503 forever."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {publishable_key}")
    card = {
        "type": "card",
        "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"},
    }
    working_redis = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    down = post(client, card, "tokenize-1", path="/v1/payment_methods")
    assert down.status_code == 503
    assert down.json()["error"]["code"] == "vault_unavailable"
    assert down["Retry-After"]
    assert not IdempotencyRecord.objects.filter(key="tokenize-1").exists()

    settings.REDIS_URL = working_redis
    retry = post(client, card, "tokenize-1", path="/v1/payment_methods")
    assert retry.status_code == 201, retry.content
    assert "Idempotent-Replayed" not in retry


@pytest.mark.django_db(transaction=True)  # the effect is a committed write: commits must happen
def test_a_5xx_after_the_operation_began_is_stored(api, monkeypatch):
    """Once a write committed, the request's outcome is what its key answers, even a 500."""
    original = merchant_services.merchant_update

    def update_then_crash(**kwargs):
        original(**kwargs)
        raise RuntimeError("crashed after the update committed")

    monkeypatch.setattr(merchant_services, "merchant_update", update_then_crash)
    first = post(api, {"name": "Crash"}, "key-500")
    assert first.status_code == 500
    monkeypatch.undo()
    replay = post(api, {"name": "Crash"}, "key-500")
    assert replay.status_code == 500 and replay["Idempotent-Replayed"] == "true"
    assert AuditLogEntry.objects.filter(action="merchant.updated").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_5xx_whose_writes_rolled_back_releases_the_key(api, merchant, monkeypatch):
    from django.db import transaction

    original = merchant_services.merchant_update

    def update_in_a_failed_transaction(**kwargs):
        with transaction.atomic():
            original(**kwargs)
            raise RuntimeError("failed before commit")

    monkeypatch.setattr(merchant_services, "merchant_update", update_in_a_failed_transaction)
    assert post(api, {"name": "Rolled back"}, "key-rb").status_code == 500
    monkeypatch.undo()
    merchant.refresh_from_db()
    assert merchant.name == "Test Shop"  # nothing happened
    retry = post(api, {"name": "Rolled back"}, "key-rb")
    assert retry.status_code == 200 and "Idempotent-Replayed" not in retry


def test_a_request_that_fails_validation_stores_nothing(api, merchant):
    bad = post(api, {"name": ""}, "key-3")
    assert bad.status_code == 400
    assert not IdempotencyRecord.objects.filter(key="key-3").exists()
    # the corrected request may reuse the key
    good = post(api, {"name": "Fixed"}, "key-3")
    assert good.status_code == 200
    merchant.refresh_from_db()
    assert merchant.name == "Fixed"


def test_a_malformed_body_stores_nothing(api):
    response = api.generic(
        "POST", "/v1/account", "{", content_type="application/json", HTTP_IDEMPOTENCY_KEY="key-4"
    )
    assert response.status_code == 400
    assert not IdempotencyRecord.objects.filter(key="key-4").exists()


def test_key_over_255_characters_is_refused(api, merchant):
    response = post(api, {"name": "X"}, "k" * 256)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_too_long"
    assert response.json()["error"]["param"] == "Idempotency-Key"
    merchant.refresh_from_db()
    assert merchant.name == "Test Shop"
    assert post(api, {"name": "X"}, "k" * 255).status_code == 200


def test_records_are_kept_24_hours_then_purged(api, settings):
    post(api, {"name": "A"}, "key-5")
    record = IdempotencyRecord.objects.get(key="key-5")
    assert record.expires_at - record.created_at >= timedelta(hours=24)
    assert idempotency_purge_expired() == 0
    IdempotencyRecord.objects.filter(pk=record.pk).update(expires_at=timezone.now())
    assert purge_expired_idempotency_records() == 1
    assert not IdempotencyRecord.objects.filter(key="key-5").exists()


def test_an_expired_key_is_free_again(api):
    post(api, {"name": "A"}, "key-6")
    IdempotencyRecord.objects.filter(key="key-6").update(expires_at=timezone.now())
    response = post(api, {"name": "B"}, "key-6")
    assert response.status_code == 200
    assert "Idempotent-Replayed" not in response


@pytest.mark.django_db(transaction=True)
def test_concurrent_twin_gets_409_and_exactly_one_executes(secret_key, merchant, monkeypatch):
    """Two threads, one key: the first runs (held inside the service), the twin gets a 409."""
    entered, release = threading.Event(), threading.Event()
    original = merchant_services.merchant_update

    def slow_update(**kwargs):
        entered.set()
        assert release.wait(10)
        return original(**kwargs)

    monkeypatch.setattr(merchant_services, "merchant_update", slow_update)
    results = {}

    def call(name):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret_key}")
        results[name] = post(client, {"metadata": {"n": "1"}}, "race-key")
        connection.close()

    first = threading.Thread(target=call, args=("first",))
    first.start()
    assert entered.wait(10)
    call("twin")  # while the first is still inside the service
    release.set()
    first.join(10)

    assert results["first"].status_code == 200
    assert results["twin"].status_code == 409
    assert results["twin"].json()["error"]["code"] == "idempotency_key_in_use"
    assert AuditLogEntry.objects.filter(action="merchant.updated").count() == 1
    # after the first completes, a retry is a replay of its response
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret_key}")
    replay = post(client, {"metadata": {"n": "1"}}, "race-key")
    assert replay.content == results["first"].content


@pytest.mark.django_db(transaction=True)
def test_many_concurrent_twins_execute_once(secret_key):
    barrier = threading.Barrier(8)
    statuses = []

    def call():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret_key}")
        barrier.wait()
        statuses.append(
            post(client, {"type": "publishable"}, "burst-key", path="/v1/api_keys").status_code
        )
        connection.close()

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    time.sleep(0)
    assert statuses.count(201) >= 1
    assert set(statuses) <= {201, 409}
    # whatever the interleaving, exactly one key was issued
    assert AuditLogEntry.objects.filter(action="api_key.created").count() == 2  # fixture + one


def _actor():
    from apps.core.audit import Actor

    return Actor.system("test")
