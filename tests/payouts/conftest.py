"""Payout fixtures: balances funded through the ledger's own services (`fund`, a capture-like
journal then the ledger's release to available: tests.factories.fund_available), sellers, and
the real simulator as payout provider.
Every database test ends with the ledger's invariants asserted."""

from __future__ import annotations

import uuid

import pytest
import requests

from apps.connectors import gateway
from apps.ledger import chart
from tests.factories import DE_BANK, US_BANK, SellerFactory
from tests.factories import fund_available as fund  # noqa: F401  (the tests import it from here)
from tests.ledger import support as ledger_support
from tests.support.simulator import start_simulator


def available(merchant, *, currency: str = "eur", seller=None, livemode=False) -> int:
    code = chart.MERCHANT_AVAILABLE if seller is None else chart.seller_available(seller.ledger_id)
    return ledger_support.balances(merchant.pk, currency, livemode).get(code, 0)


def in_transit(merchant, *, currency: str = "eur", livemode=False) -> int:
    return ledger_support.balances(merchant.pk, currency, livemode).get(chart.PAYOUTS_IN_TRANSIT, 0)


def make_seller(merchant, *, bank=None, name="Jenny's Shop", **extra):
    return SellerFactory(merchant=merchant, name=name, bank_account=dict(bank or DE_BANK), **extra)


@pytest.fixture(autouse=True)
def _ledger_invariants(request):
    """After every database test: per currency the ledger balances and every account matches
    its entries."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        yield
        return
    transactional = marker.kwargs.get("transaction", False)
    request.getfixturevalue("transactional_db" if transactional else "db")
    yield
    ledger_support.assert_zero_sums()
    ledger_support.assert_accounts_match_entries()
    ledger_support.assert_journals_balanced()


@pytest.fixture
def seller(merchant):
    return make_seller(merchant)


@pytest.fixture
def us_seller(merchant):
    return make_seller(merchant, bank=US_BANK, name="US Shop")


@pytest.fixture(scope="session")
def simulator_url():
    base_url, stop = start_simulator()
    yield base_url
    stop()


class PayoutSimulator:
    """The simulator's control API for one payout account."""

    def __init__(self, base_url: str, account: str):
        self.base_url = base_url
        self.account = account

    def settings(self, **values) -> None:
        url = f"{self.base_url}/_sim/connectors/{self.account}/settings"
        requests.patch(url, json=values, timeout=5).raise_for_status()

    def faults(self, **faults) -> None:
        url = f"{self.base_url}/_sim/connectors/{self.account}/faults"
        requests.put(url, json=faults, timeout=5).raise_for_status()

    def payouts(self) -> list[dict]:
        response = requests.get(
            f"{self.base_url}/_sim/payouts", params={"connector": self.account}, timeout=5
        )
        response.raise_for_status()
        return response.json()["data"]


@pytest.fixture
def payout_sim(simulator_url, settings) -> PayoutSimulator:
    """A fresh simulator account per test; the platform's provider settings point at it, with
    delayed outcomes after 50 ms instead of a second."""
    account = f"payouts-{uuid.uuid4().hex[:8]}"
    settings.PAYOUT_PROVIDER_URL = f"{simulator_url}/stripe/{account}"
    settings.PAYOUT_PROVIDER_API_KEY = "sk_test_payout_tests"
    sim = PayoutSimulator(simulator_url, account)
    sim.settings(async_outcome_delay_ms=50)
    return sim


class GatewayPayouts:
    """The platform's payout provider as the payouts app reaches it: through the gateway."""

    @staticmethod
    def create_payout(request):
        return gateway.payout_create(request=request)

    @staticmethod
    def retrieve_payout(*, reference: str, payout_id: str = ""):
        return gateway.payout_retrieve(reference=reference, payout_id=payout_id)


@pytest.fixture
def provider(payout_sim, settings) -> GatewayPayouts:
    settings.PAYOUT_PROVIDER_READ_TIMEOUT_S = 2.0
    return GatewayPayouts()
