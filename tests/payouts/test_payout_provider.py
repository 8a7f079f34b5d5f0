"""Payouts through the connector gateway against the real simulator: outcomes, fault
classification (not processed vs. maybe processed, by the same transport classification as
payments), idempotency, and the provider's configuration from settings. Plus the whole path:
API -> on commit -> Celery task -> gateway -> provider -> paid."""

from __future__ import annotations

import time

import pytest

from apps.connectors import endpoints, gateway
from apps.payouts import tasks
from apps.payouts.models import Payout
from apps.psp_adapters.contract import PayoutRequest, ProviderOutcome
from payments_platform.celery import app as celery_app
from tests.factories import PayoutFactory
from tests.payouts.conftest import available, fund, in_transit
from tests.support.simulator import free_port

Out = ProviderOutcome


def _request(amount=1_000, destination="000123456789", key="po_test:1") -> PayoutRequest:
    return PayoutRequest(
        payout_id="po_test",
        idempotency_key=key,
        amount=amount,
        currency="eur",
        destination=destination,
    )


@pytest.mark.parametrize(
    ("amount", "destination", "outcome", "code"),
    [
        (1_000, "000123456789", Out.PAID, ""),
        (9_902, "000123456789", Out.PENDING, ""),
        (1_000, "110000000-000111111113", Out.PENDING, ""),  # fails later: account_closed
        (9_901, "000123456789", Out.REJECTED, "balance_insufficient"),
    ],
)
def test_outcomes(provider, amount, destination, outcome, code):
    result = provider.create_payout(_request(amount, destination, key=f"k-{amount}-{destination}"))
    assert (result.outcome, result.failure_code) == (outcome, code)
    assert bool(result.reference) == (outcome != Out.REJECTED)


def test_delayed_failure_is_read_back(provider):
    sent = provider.create_payout(_request(destination="110000000-000111111113"))
    for _ in range(100):
        read = provider.retrieve_payout(reference=sent.reference)
        if read.outcome != Out.PENDING:
            break
        time.sleep(0.02)
    assert (read.outcome, read.failure_code) == (Out.FAILED, "account_closed")


def test_same_key_is_the_same_payout(provider, payout_sim):
    first = provider.create_payout(_request())
    again = provider.create_payout(_request())
    assert again.reference == first.reference
    assert len(payout_sim.payouts()) == 1


@pytest.mark.parametrize(
    ("faults", "outcome"),
    [
        ({"error_503_rate": 1}, Out.RETRYABLE),  # refused before processing
        ({"error_500_rate": 1}, Out.UNKNOWN),  # a 500 looks the same processed or not
        ({"processed_then_500_rate": 1}, Out.UNKNOWN),
        ({"outage": True, "outage_mode": "drop"}, Out.UNKNOWN),  # connection closed after sending
    ],
)
def test_faults_are_classified_by_whether_the_payout_may_have_been_made(
    provider, payout_sim, faults, outcome
):
    payout_sim.faults(**faults, operations=["payout"])
    assert provider.create_payout(_request()).outcome == outcome


def test_read_timeout_is_unknown(payout_sim, settings):
    # the same transport classification as a payment: the request may have reached the
    # provider, so the payout is unknown and only ever re-sent with its key
    payout_sim.faults(latency_ms=1_000, operations=["payout"])
    settings.PAYOUT_PROVIDER_READ_TIMEOUT_S = 0.2
    result = gateway.payout_create(request=_request())
    assert result.outcome == Out.UNKNOWN


def test_nothing_listening_is_retryable(settings):
    settings.PAYOUT_PROVIDER_URL = f"http://127.0.0.1:{free_port()}/stripe/x"
    assert gateway.payout_create(request=_request()).outcome == Out.RETRYABLE


def test_provider_is_configured_from_settings(settings):
    settings.PAYOUT_PROVIDER_URL = ""
    settings.SIMULATOR_URL = "http://sim.example:8090/"
    settings.PAYOUT_PROVIDER_ACCOUNT = "payouts-eu"
    assert endpoints.payout_provider_url() == "http://sim.example:8090/stripe/payouts-eu"
    assert "000123456789" not in repr(_request())  # a bank account number never shows


class _RedirectingProvider:
    """A provider URL that answers every request with a 307 to `target`."""

    def __init__(self, target: str):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(307)
                self.send_header("Location", f"{target}/v1/payouts")
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stripe/x"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_redirect_is_not_followed_and_the_bank_details_go_nowhere_else(settings):
    from tests.support.listener import ConnectionRecorder

    elsewhere = ConnectionRecorder()
    provider_host = _RedirectingProvider(elsewhere.url)
    try:
        settings.PAYOUT_PROVIDER_URL = provider_host.url
        result = gateway.payout_create(request=_request())
        # not processed (a configuration problem): retried later with the same key
        assert (result.outcome, result.http_status) == (Out.RETRYABLE, 307)
        assert gateway.payout_retrieve(reference="po_1").outcome == Out.RETRYABLE
        elsewhere.assert_nothing_received()
    finally:
        provider_host.stop()
        elsewhere.stop()


def test_the_providers_reference_stays_one_path_segment(settings):
    from tests.support.listener import ConnectionRecorder

    provider_host = ConnectionRecorder()
    try:
        settings.PAYOUT_PROVIDER_URL = f"{provider_host.url}/stripe/x"
        settings.PAYOUT_PROVIDER_READ_TIMEOUT_S = 0.5
        gateway.payout_retrieve(reference="../../../admin?x=1#")
        request_line = provider_host.received.split(b"\r\n", 1)[0]
        assert request_line == b"GET /stripe/x/v1/payouts/..%2F..%2F..%2Fadmin%3Fx%3D1%23 HTTP/1.1"
    finally:
        provider_host.stop()


@pytest.mark.parametrize(
    ("provider_url", "simulator_url"),
    [
        ("", ""),  # production without a provider: no silent fallback to a made-up URL
        ("ftp://payouts.example/", ""),
        ("https://user:pw@payouts.example/", ""),
        ("https://payouts.example/?to=elsewhere", ""),
        ("https://payouts.example:99999/", ""),
    ],
)
def test_a_misconfigured_provider_url_fails_loudly(settings, provider_url, simulator_url):
    from django.core.exceptions import ImproperlyConfigured

    settings.PAYOUT_PROVIDER_URL = provider_url
    settings.SIMULATOR_URL = simulator_url
    with pytest.raises(ImproperlyConfigured):
        endpoints.payout_provider_url()


@pytest.mark.django_db
def test_api_payout_is_submitted_after_commit_and_paid(
    api, merchant, payout_sim, django_capture_on_commit_callbacks
):
    fund(merchant, 10_000)
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = api.post("/v1/payouts", {"amount": 2_500, "currency": "eur"}, format="json")
    finally:
        celery_app.conf.task_always_eager = False

    assert response.json()["status"] == "pending"  # the answer does not wait for the bank
    payout = Payout.objects.get(public_id=response.json()["id"])
    assert payout.status == "paid"
    assert (available(merchant), in_transit(merchant)) == (7_500, 0)
    assert [p["metadata"]["payout_id"] for p in payout_sim.payouts()] == [payout.public_id]


@pytest.mark.django_db
def test_poll_task_resolves_delayed_payouts(merchant, payout_sim):
    fund(merchant, 20_000)
    payout = PayoutFactory(merchant=merchant, amount=9_902, funded=False)
    assert tasks.submit_payout.apply(args=[payout.pk]).get() == "in_transit"
    time.sleep(0.2)  # the simulator pays delayed payouts after 50 ms here

    assert tasks.poll_in_transit.apply().get() == 1
    assert Payout.objects.get(pk=payout.pk).status == "paid"
    assert tasks.resubmit_pending.apply().get() == 0
