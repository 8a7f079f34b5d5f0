"""Shared fixtures. Tests talk to the real PostgreSQL and Redis (settings.test)."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.db.backends.postgresql.operations import DatabaseOperations
from rest_framework.test import APIClient

from apps.core.audit import Actor
from tests.factories import ApiKeyFactory, MerchantFactory

# Append-only tables (audit log, ledger) refuse TRUNCATE by trigger. Transactional tests flush the
# database between tests with TRUNCATE, so only the test flush runs with triggers off
# (session_replication_role=replica needs a superuser, which the test role is).
_original_execute_sql_flush = DatabaseOperations.execute_sql_flush


def _execute_sql_flush_without_triggers(self, sql_list):
    with self.connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
    try:
        _original_execute_sql_flush(self, sql_list)
    finally:
        with self.connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = DEFAULT")


DatabaseOperations.execute_sql_flush = _execute_sql_flush_without_triggers


@pytest.fixture(autouse=True)
def _clean_redis():
    """Each test starts with the test Redis database empty (breaker state, CVCs, caches)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield
    client.close()


@pytest.fixture
def system_actor() -> Actor:
    return Actor.system("tests")


@pytest.fixture
def merchant(db):
    return MerchantFactory(name="Test Shop", email="shop@example.com")


@pytest.fixture
def other_merchant(db):
    return MerchantFactory(name="Other Shop", email="")


@pytest.fixture
def secret_key(merchant) -> str:
    return ApiKeyFactory(merchant=merchant, kind="secret").raw_key


@pytest.fixture
def publishable_key(merchant) -> str:
    return ApiKeyFactory(merchant=merchant, kind="publishable").raw_key


@pytest.fixture
def api(secret_key) -> APIClient:
    """An API client authenticated with the merchant's test secret key."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret_key}")
    return client


@pytest.fixture
def anon_api() -> APIClient:
    return APIClient()


@pytest.fixture
def staff_roles(db):
    call_command("bootstrap_roles", verbosity=0)
