"""`manage.py demo_load` (or `make load`): some traffic for the `make run` demo, through the
API as a merchant's integration sends it, so the metrics (/metrics), the traces and the admin
dashboards have something to show: approvals on several cards and currencies, soft and hard
declines, a failover (the stripe simulator account in an outage for a few payments), refunds,
and a disputed payment (the simulator's dispute card) when apps.disputes is installed. Then the
dashboard rollups are refreshed."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import timedelta

import requests
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apps.connectors import selectors as connector_selectors
from apps.connectors import services as connector_services
from apps.demo.management.commands.seed_demo import demo_key
from apps.merchants.models import Merchant

APPROVE = ["4242424242424242", "5555555555554444", "4000056655665556"]
SOFT = ["4000000000009995", "4000009900000012", "4000000000000002"]  # insufficient, dnh, generic
HARD = ["4000000000009987", "4000000000000069"]  # lost, expired
CURRENCIES = ["eur", "eur", "eur", "usd", "gbp"]
DISPUTED = "4000000000000259"  # the simulator disputes it as fraudulent after capture


class Command(BaseCommand):
    help = "Send demo payments through the running API: successes, declines, a failover."

    def add_arguments(self, parser):
        parser.add_argument("--payments", type=int, default=60)
        parser.add_argument("--base-url", default=settings.API_BASE_URL)
        parser.add_argument("--seed", type=int, default=None, help="random seed (repeatable)")

    def handle(self, *args, payments: int, base_url: str, seed: int | None, **options):
        rng = random.Random(seed)
        merchant = Merchant.objects.filter(metadata__demo_label="demo").first()
        if merchant is None:
            raise CommandError("no demo merchant: run `manage.py seed_demo` (make run does)")
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {demo_key('secret', 'demo')}"
        base = base_url.rstrip("/")
        try:
            api.get(f"{base}/v1/account", timeout=5).raise_for_status()
        except requests.RequestException as exc:
            raise CommandError(f"the API at {base} does not answer ({exc}): is `make run` up?")
        stripe = self._simulator_account(merchant, "stripe")
        results: Counter = Counter()
        succeeded: list[str] = []
        outage = range(payments // 3, payments // 3 + max(3, payments // 10))
        for n in range(payments):
            if stripe and n == outage.start:
                self._faults(stripe, outage=True)
                self.stdout.write(f"stripe simulator account {stripe}: outage on (failovers)")
            if stripe and n == outage.stop:
                self._faults(stripe, outage=False)
                self.stdout.write("outage off")
            roll = rng.random()
            number = rng.choice(APPROVE if roll < 0.75 else SOFT if roll < 0.92 else HARD)
            body = self._pay(api, base, number, rng)
            status = body.get("status") or body.get("error", {}).get("payment_intent", {}).get(
                "status", body.get("error", {}).get("code", "error")
            )
            results[status] += 1
            if body.get("status") == "succeeded":
                succeeded.append(body["id"])
        if stripe and payments <= outage.stop:
            self._faults(stripe, outage=False)
        for intent in succeeded[: max(1, len(succeeded) // 10)]:
            response = api.post(
                f"{base}/v1/refunds",
                json={"payment_intent": intent, "amount": 100},
                headers={"Idempotency-Key": uuid.uuid4().hex},
                timeout=30,
            )
            results[f"refund {response.json().get('status', response.status_code)}"] += 1
        if apps.is_installed("apps.disputes"):
            # the simulator's dispute card (docs/disputes.md): captured, then disputed as
            # fraudulent after the simulator's dispute delay, through the PSP's notification
            body = self._pay(api, base, DISPUTED, rng)
            results[f"to be disputed {body.get('status', 'error')}"] += 1
            self.stdout.write(f"dispute: {body.get('id')} is disputed by the simulator shortly")
        else:
            self.stdout.write("disputes: apps.disputes is not installed, no dispute sent")
        from apps.observability.rollups import rollups_refresh

        rollups_refresh(since=timezone.now() - timedelta(hours=1))
        self.stdout.write("demo_load: " + ", ".join(f"{k} {v}" for k, v in sorted(results.items())))
        self.stdout.write(f"dashboards: {base}/admin/observability/attemptrollup/ops/")

    def _pay(self, api, base: str, number: str, rng) -> dict:
        method = api.post(
            f"{base}/v1/payment_methods",
            json={
                "type": "card",
                "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
                "billing_details": {"name": rng.choice(["Jane Doe", "Sam Lee", "Ana Ruiz"])},
            },
            headers={"Idempotency-Key": uuid.uuid4().hex},
            timeout=30,
        ).json()
        response = api.post(
            f"{base}/v1/payment_intents",
            json={
                "amount": rng.choice([999, 1999, 4599, 12000, 250]),
                "currency": rng.choice(CURRENCIES),
                "payment_method": method["id"],
                "confirm": True,
                "customer_email": f"shopper{rng.randint(1, 40)}@example.com",
            },
            headers={"Idempotency-Key": uuid.uuid4().hex},
            timeout=60,
        )
        return response.json()

    def _simulator_account(self, merchant, connector_type: str) -> str | None:
        for connector in connector_selectors.connector_list(
            merchant_id=merchant.pk, livemode=False
        ):
            if connector.connector_type == connector_type and connector.enabled:
                return connector_services.connector_simulator_account(connector)
        return None

    def _faults(self, account: str, **faults) -> None:
        requests.put(
            f"{settings.SIMULATOR_URL.rstrip('/')}/_sim/connectors/{account}/faults",
            json=faults,
            timeout=5,
        ).raise_for_status()
