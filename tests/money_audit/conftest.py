"""Money audit fixtures: the real PSP simulator and two connectors on it (the checkout-plane
fixtures), and `audit`, which runs `manage.py money_audit` against that simulator."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import pytest
import requests
from django.core.management import call_command

from apps.money_audit.models import MoneyAuditRun
from tests.intents.conftest import (  # noqa: F401  (fixtures)
    Simulator,
    adyen_connector,
    connector_names,
    connectors,
    pay,
    platform_simulator,
    sim,
    simulator_url,
    stripe_connector,
    tokenize,
)


@dataclass
class AuditResult:
    exit_status: int
    text: str
    run: MoneyAuditRun

    def check(self, name: str):
        return self.run.checks.get(name=name)

    def status(self, name: str) -> str:
        return self.check(name).status

    def offender_ids(self, name: str) -> set[str]:
        return {o["id"] for o in self.check(name).offenders}

    def broken(self) -> set[str]:
        return set(self.run.checks.filter(status="broken").values_list("name", flat=True))


@pytest.fixture
def audit(sim):  # noqa: F811  (the imported fixture)
    """Runs the command as an operator would (`--simulator-url` this test's simulator) and
    returns its exit status, what it printed and the stored run."""

    def run(*args: str, simulator: str | None = None) -> AuditResult:
        out = io.StringIO()
        status = 0
        try:
            call_command(
                "money_audit", "--simulator-url", simulator or sim.base_url, *args, stdout=out
            )
        except SystemExit as exc:
            status = exc.code
        return AuditResult(status, out.getvalue(), MoneyAuditRun.objects.latest("id"))

    return run


@pytest.fixture
def audit_json(sim):  # noqa: F811  (the imported fixture)
    def run(*args: str) -> tuple[int, dict]:
        out = io.StringIO()
        status = 0
        try:
            call_command(
                "money_audit", "--simulator-url", sim.base_url, "--json", *args, stdout=out
            )
        except SystemExit as exc:
            status = exc.code
        return status, json.loads(out.getvalue())

    return run


@pytest.fixture
def psp(sim):  # noqa: F811  (the imported fixture)
    """Acts on the simulated PSP directly, behind the platform's back (Stripe dialect)."""

    base_url = sim.base_url

    class Psp:
        def stripe(self, name: str, path: str, **form) -> dict:
            response = requests.post(
                f"{base_url}/stripe/{name}/v1/{path}",
                data=form,
                headers={"Authorization": "Bearer sk_test_behind_our_back"},
                timeout=10,
            )
            assert response.status_code == 200, response.text
            return response.json()

        def refunds(self, **filters) -> list[dict]:
            response = requests.get(f"{base_url}/_sim/refunds", params=filters, timeout=10)
            response.raise_for_status()
            return response.json()["data"]

        def charge(self, name: str, *, attempt_id: str, amount: int, capture: bool = True):
            return self.stripe(
                name,
                "payment_intents",
                amount=amount,
                currency="eur",
                confirm="true",
                capture_method="automatic" if capture else "manual",
                **{
                    "payment_method_data[type]": "card",
                    "payment_method_data[card][number]": "4242424242424242",
                    "payment_method_data[card][exp_month]": "12",
                    "payment_method_data[card][exp_year]": "2034",
                    "payment_method_data[card][cvc]": "123",
                    "metadata[attempt_id]": attempt_id,
                },
            )

    return Psp()
