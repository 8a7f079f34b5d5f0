"""Reconciliation fixtures: the real simulator (settlement batches and reports), the
checkout-plane connectors on it, and helpers to pay, refund and settle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.intents import services as intent_services
from apps.psp_adapters.contract import Outcome
from apps.psp_simulator.control_client import SimulatorControl
from apps.reconciliation import services
from tests.factories.intents import PaymentIntentFactory, RefundFactory
from tests.intents.conftest import (  # noqa: F401  (fixtures)
    adyen_connector,
    connector_names,
    platform_simulator,
    simulator_url,
    stripe_connector,
)

TODAY = datetime.now(UTC).date()


def day(offset: int):
    return TODAY + timedelta(days=offset)


@pytest.fixture
def control(simulator_url) -> SimulatorControl:  # noqa: F811
    return SimulatorControl(simulator_url)


@pytest.fixture
def stripe_recon(stripe_connector):  # noqa: F811
    services.profile_for(connector=stripe_connector)
    return stripe_connector


@pytest.fixture
def adyen_recon(adyen_connector):  # noqa: F811
    services.profile_for(connector=adyen_connector)
    return adyen_connector


@pytest.fixture
def pay(merchant):
    def make(amount: int = 2000, currency: str = "eur"):
        return PaymentIntentFactory(
            merchant=merchant, status="succeeded", amount=amount, currency=currency
        )

    return make


@pytest.fixture
def refund():
    def make(intent, amount: int | None = None):
        refund = RefundFactory(intent=intent, amount=amount)
        if refund.status == "pending":  # Adyen confirms by webhook: applied as its handler does
            refund = intent_services.refund_apply_result(
                refund_id=refund.pk, outcome=Outcome.APPROVED
            )
        return refund

    return make
