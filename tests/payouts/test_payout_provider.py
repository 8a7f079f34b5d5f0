"""The payout-provider adapter against the real simulator: outcomes, fault classification
(not processed vs. maybe processed), idempotency, and configuration from settings. Plus the
whole path: API -> on commit -> Celery task -> provider -> paid."""

from __future__ import annotations

import time

import pytest

from apps.core.audit import Actor
from apps.payouts import services, tasks
from apps.payouts.models import Payout
from apps.payouts.provider import (
    PayoutRequest,
    ProviderOutcome,
    SimulatorPayoutProvider,
    payout_provider,
)
from payments_platform.celery import app as celery_app
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


def test_read_timeout_is_unknown(payout_sim):
    payout_sim.faults(latency_ms=1_000, operations=["payout"])
    slow = SimulatorPayoutProvider(
        base_url=f"{payout_sim.base_url}/stripe/{payout_sim.account}",
        api_key="sk_test_x",
        read_timeout=0.2,
    )
    assert slow.create_payout(_request()).outcome == Out.UNKNOWN


def test_nothing_listening_is_retryable():
    closed = SimulatorPayoutProvider(
        base_url=f"http://127.0.0.1:{free_port()}/stripe/x", api_key="sk_test_x"
    )
    assert closed.create_payout(_request()).outcome == Out.RETRYABLE


def test_provider_is_configured_from_settings(settings):
    settings.PAYOUT_PROVIDER_URL = ""
    settings.SIMULATOR_URL = "http://sim.example:8090/"
    settings.PAYOUT_PROVIDER_ACCOUNT = "payouts-eu"
    assert payout_provider().base_url == "http://sim.example:8090/stripe/payouts-eu"
    assert "000123456789" not in repr(_request())  # a bank account number never shows


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
    payout = services.payout_create(
        merchant=merchant,
        livemode=False,
        amount=9_902,
        currency="eur",
        actor=Actor.system("tests"),
    )
    assert tasks.submit_payout.apply(args=[payout.pk]).get() == "in_transit"
    time.sleep(0.2)  # the simulator pays delayed payouts after 50 ms here

    assert tasks.poll_in_transit.apply().get() == 1
    assert Payout.objects.get(pk=payout.pk).status == "paid"
    assert tasks.resubmit_pending.apply().get() == 0
