"""`python -m soak.seed`: the soak's merchant, its test keys and its two simulator connectors,
written through the apps' services (there is no API to create a merchant, and the simulator's
account name of a connector is the platform's to choose). Prints JSON; the keys are shown once.
Runs inside the soak's environment (its own database, SIMULATOR_URL the soak's simulator)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "payments_platform.settings.production")


def main() -> None:
    import django

    django.setup()
    from apps.connectors import services as connector_services
    from apps.core.audit import Actor
    from apps.merchants import services as merchant_services
    from soak.setup import CREDENTIALS, FEES, READ_TIMEOUT_MS, SIM_NAMES

    actor = Actor.system("soak")
    merchant = merchant_services.merchant_create(
        name="Soak Shop", email="soak@example.com", country="NL", actor=actor
    )
    secret = merchant_services.api_key_create(
        merchant=merchant, kind="secret", livemode=False, actor=actor, name="soak"
    )
    publishable = merchant_services.api_key_create(
        merchant=merchant, kind="publishable", livemode=False, actor=actor, name="soak"
    )
    connectors = {}
    for priority, dialect in enumerate(("stripe", "adyen"), start=1):
        connector = connector_services.connector_create(
            merchant=merchant,
            livemode=False,
            name=SIM_NAMES[dialect],
            connector_type=dialect,
            endpoint="simulator",
            simulator_account=SIM_NAMES[dialect],
            credentials=CREDENTIALS[dialect],
            supported_currencies=["eur", "usd"],
            fee_schedule=FEES[dialect],
            priority=priority,
            read_timeout_ms=READ_TIMEOUT_MS,
            actor=actor,
        )
        connectors[dialect] = connector.public_id
    print(
        json.dumps(
            {
                "merchant": merchant.public_id,
                "secret_key": secret.raw_key,
                "publishable_key": publishable.raw_key,
                "connectors": connectors,
            }
        )
    )


if __name__ == "__main__":
    main()
