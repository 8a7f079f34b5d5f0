"""Demo data for `make run`. Idempotent: a second run adds nothing.

Demo keys are derived from SECRET_KEY (HMAC), so they are stable across runs and can be printed
again, while only their hashes are stored. Never run this against production."""

import hashlib
import hmac
import json

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction
from guardian.shortcuts import assign_perm

from apps.connectors import selectors as connector_selectors
from apps.connectors import services as connector_services
from apps.core.audit import Actor
from apps.demo import services as demo_services
from apps.merchants.models import ApiKey, Merchant
from apps.merchants.services import hash_api_key, key_prefix
from apps.reconciliation import services as reconciliation_services

# Both connectors use the platform's simulator endpoint (`make run` starts the simulator and
# exports SIMULATOR_URL): one per PSP dialect.
DEMO_CONNECTORS = [
    {
        "name": "stripe-sim",
        "connector_type": "stripe",
        "priority": 1,
        "credentials": {"api_key": "sk_test_simulator_stripe", "webhook_secret": "whsec_simstripe"},
        "supported_currencies": ["eur", "usd", "gbp", "jpy"],
        "fee_schedule": [
            {"brand": "*", "fixed": 25, "percent_bps": 140},
            {"brand": "amex", "fixed": 25, "percent_bps": 290},
        ],
    },
    {
        "name": "adyen-sim",
        "connector_type": "adyen",
        "priority": 2,
        "credentials": {
            "api_key": "AQE_simulator_adyen",
            "merchant_account": "DemoShopECOM",
            "hmac_key": "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056",
        },
        "supported_currencies": ["eur", "usd", "gbp"],
        "fee_schedule": [{"brand": "*", "fixed": 10, "percent_bps": 160}],
    },
]

DEMO_STAFF = {
    "finance": "finance-demo-2026",
    "ops": "ops-demo-2026",
    "support": "support-demo-2026",
    "admin": "admin-demo-2026",
}


def demo_key(kind: str, label: str) -> str:
    digest = hmac.new(
        settings.SECRET_KEY.encode(), f"demo:{label}:{kind}".encode(), hashlib.sha256
    ).hexdigest()
    return key_prefix(kind, False) + "demo" + digest[:28]


class Command(BaseCommand):
    help = "Seed the demo merchant, its test keys, and one staff login per role (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    @transaction.atomic
    def handle(self, *args, **options):
        call_command("bootstrap_roles", verbosity=0)
        actor = Actor.system("seed_demo")
        created = 0
        result = {"merchants": {}, "staff": {}}
        for label, name in (("demo", "Demo Shop"), ("other", "Other Shop")):
            merchant, made = Merchant.objects.get_or_create(
                metadata__demo_label=label,
                defaults={
                    "name": name,
                    "email": f"{label}@example.com",
                    "country": "NL",
                    "metadata": {"demo_label": label},
                },
            )
            created += made
            keys = {}
            for kind in (ApiKey.Kind.SECRET, ApiKey.Kind.PUBLISHABLE):
                raw = demo_key(kind, label)
                _, made = ApiKey.objects.get_or_create(
                    key_hash=hash_api_key(raw),
                    defaults={
                        "merchant": merchant,
                        "kind": kind,
                        "livemode": False,
                        "display": f"{raw[:12]}…{raw[-4:]}",
                        "name": "demo",
                    },
                )
                created += made
                keys[kind] = raw
            result["merchants"][label] = {
                "id": merchant.public_id,
                "name": merchant.name,
                "merchant": merchant,
                **keys,
            }
        for extra in self._seed_more(result, actor):
            created += extra

        user_model = get_user_model()
        demo_merchant = result["merchants"]["demo"]["merchant"]
        for role, password in DEMO_STAFF.items():
            user = user_model.objects.filter(username=role).first()
            if user is None:
                user = user_model.objects.create_user(
                    username=role, password=password, is_staff=True, email=f"{role}@example.com"
                )
                created += 1
            user.groups.add(Group.objects.get(name=role))
            if role != "admin":
                # role staff serve the demo merchant only: scoping is visible in the admin
                assign_perm("merchants.serve_merchant", user, demo_merchant)
            result["staff"][role] = password
        for entry in result["merchants"].values():
            entry.pop("merchant")
        result["created"] = created
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(f"seed_demo: {created} new rows")

    def _seed_more(self, result, actor):
        """Connectors (and what later apps hang off them) for the demo merchant."""
        merchant = result["merchants"]["demo"]["merchant"]
        existing = {
            c.name
            for c in connector_selectors.connector_list(merchant_id=merchant.id, livemode=False)
        }
        made = []
        for spec in DEMO_CONNECTORS:
            if spec["name"] in existing:
                continue
            # the platform's simulator endpoint (SIMULATOR_URL, which `make run` exports), under
            # the connector's name as its simulated account: `simulator_faults stripe-sim`
            connector_services.connector_create(
                merchant=merchant,
                livemode=False,
                actor=actor,
                endpoint="simulator",
                simulator_account=spec["name"],
                **spec,
            )
            made.append(1)
        connectors = list(
            connector_selectors.connector_list(merchant_id=merchant.id, livemode=False)
        )
        demo_services.demo_routing_profile_seed(merchant=merchant, connectors=connectors)
        # the simulator settles both connectors and serves their reports: reconcile them nightly
        for connector in connectors:
            reconciliation_services.profile_for(connector=connector)
        demo_services.demo_webhooks_seed(
            merchant=merchant,
            connectors=connectors,
            platform_base_url=settings.API_BASE_URL,
            simulator_url=settings.SIMULATOR_URL,
        )
        # a payment the simulator disputes, once the simulator and the worker are up
        self._seed_disputed_payment(merchant)
        return made

    def _seed_disputed_payment(self, merchant) -> None:
        from apps.demo.tasks import seed_disputed_payment

        def enqueue() -> None:
            try:
                seed_disputed_payment.apply_async((merchant.pk,), countdown=5)
            except Exception:
                self.stderr.write("seed_demo: broker down, the disputed demo payment is skipped")

        transaction.on_commit(enqueue)  # the task reads the merchant this transaction writes
