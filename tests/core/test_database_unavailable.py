"""A database that is briefly away (PostgreSQL restarting, a backend terminated, connections
refused) answers 503 with Retry-After: the error envelope on the API (also when the API key
lookup is the first query), a short page in the admin, never a 500 or a debug page."""

from __future__ import annotations

import socket
from contextlib import contextmanager

import psycopg
import pytest
from django.core.handlers.exception import convert_exception_to_response
from django.db import OperationalError, connection
from django.http import HttpResponse
from django.test import RequestFactory, override_settings
from rest_framework.test import APIClient

from apps.core.middleware import DatabaseUnavailableMiddleware
from apps.merchants.models import Merchant
from tests.factories import StaffUserFactory

CARD = {"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034}}


def _terminate_own_backend() -> None:
    """Ends this thread's PostgreSQL session from a second connection, as a restart would."""
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    dsn = {k: params[k] for k in ("host", "port", "user", "password", "dbname") if params.get(k)}
    with psycopg.connect(**dsn, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _database_refusing_connections():
    """Nothing listens where the database was: every new connection is refused."""
    saved = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = _free_port()
    try:
        yield
    finally:
        connection.settings_dict["PORT"] = saved
        connection.close()


@pytest.fixture
def recover():
    yield
    connection.close()  # the broken session goes; the next query reconnects


def _assert_unavailable(response) -> dict:
    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) > 0
    error = response.json()["error"]
    assert error["type"] == "api_error"
    assert error["code"] == "service_unavailable"
    assert error["request_id"] == response["Request-Id"]
    return error


@pytest.mark.django_db(transaction=True)
def test_terminated_backend_during_tokenization_is_a_503(publishable_key, recover):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {publishable_key}")
    client.raise_request_exception = False
    _terminate_own_backend()

    # the API key lookup is the first query: it meets the dead session
    _assert_unavailable(client.post("/v1/payment_methods", CARD, format="json"))

    connection.close()
    assert client.post("/v1/payment_methods", CARD, format="json").status_code == 201


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/v1/payment_methods", CARD),
        ("get", "/v1/payment_intents", None),
        ("post", "/v1/payment_intents", {"amount": 100, "currency": "eur"}),
        ("get", "/v1/balance", None),
        ("post", "/v1/account", {"name": "x"}),
    ],
)
def test_refused_connections_are_a_503_on_every_endpoint(
    secret_key, publishable_key, recover, method, path, body
):
    key = publishable_key if path == "/v1/payment_methods" else secret_key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    client.raise_request_exception = False
    with _database_refusing_connections():
        response = getattr(client, method)(path, body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    _assert_unavailable(response)
    assert Merchant.objects.get().name == "Test Shop"  # the database is back, nothing changed


@pytest.mark.django_db(transaction=True)
@override_settings(DEBUG=True)
def test_admin_shows_a_short_page_not_a_debug_page(client, recover):
    client.force_login(StaffUserFactory(superuser=True))
    client.raise_request_exception = False
    _terminate_own_backend()

    page = client.get("/admin/intents/paymentintent/")

    assert page.status_code == 503
    assert int(page["Retry-After"]) > 0
    html = page.content.decode()
    assert "Temporarily unavailable" in html
    assert "Traceback" not in html and "OperationalError" not in html and "SELECT" not in html


@override_settings(DEBUG=True)
def test_a_database_error_raised_in_a_middleware_is_a_503_too():
    """Django turns an inner middleware's exception into a (debug) 500 before an outer
    middleware sees it; the 503 replaces it."""

    def inner(request):
        raise OperationalError("the connection is closed")

    middleware = DatabaseUnavailableMiddleware(convert_exception_to_response(inner))
    for path, content_type in (("/admin/", "text/html"), ("/v1/balance", "application/json")):
        response = middleware(RequestFactory().get(path))
        assert response.status_code == 503
        assert response["Content-Type"] == content_type
        assert "Traceback" not in response.content.decode()


def test_other_errors_are_not_taken_for_an_outage():
    def inner(request):
        return HttpResponse(status=500)

    response = DatabaseUnavailableMiddleware(inner)(RequestFactory().get("/v1/balance"))
    assert response.status_code == 500
