"""With the psycopg pool (DB_POOL=1, as production and `make bench` run), a payment gives its
database connection back to the pool while it waits on the PSP: the pool is sized by CPU, not
by PSP latency. Checked on a real pool of the test database, through the API."""

from __future__ import annotations

import pytest
from django.db import connection

from apps.connectors import gateway


@pytest.fixture
def pooled():
    """This thread's default connection drawn from a real psycopg pool for the test."""
    options = connection.settings_dict["OPTIONS"]
    connection.close()
    options["pool"] = {"min_size": 1, "max_size": 4}
    try:
        yield
    finally:
        connection.close()
        connection.close_pool()
        del options["pool"]


@pytest.mark.django_db(transaction=True)
def test_the_connection_is_back_in_the_pool_during_the_psp_call(
    pooled, pay, stripe_connector, monkeypatch
):
    held_during_call = []
    original = gateway.get_adapter

    def watching(config):
        adapter = original(config)
        authorize = adapter.authorize

        def authorize_and_look(request):
            held_during_call.append(connection.connection is not None)
            return authorize(request)

        adapter.authorize = authorize_and_look
        return adapter

    monkeypatch.setattr(gateway, "get_adapter", watching)
    response = pay(key="pooled-1")

    assert response.status_code == 200 and response.json()["status"] == "succeeded"
    assert held_during_call == [False]  # released before the call, taken again for tx B
    assert connection.pool is not None


@pytest.mark.django_db
def test_a_connection_inside_a_transaction_is_never_released(pay, stripe_connector, monkeypatch):
    """No pool (the test settings) and a test's transaction around everything: untouched."""
    held_during_call = []
    original = gateway.get_adapter

    def watching(config):
        adapter = original(config)
        authorize = adapter.authorize

        def authorize_and_look(request):
            held_during_call.append(connection.connection is not None)
            return authorize(request)

        adapter.authorize = authorize_and_look
        return adapter

    monkeypatch.setattr(gateway, "get_adapter", watching)
    assert pay(key="plain-1").json()["status"] == "succeeded"
    assert held_during_call == [True]
