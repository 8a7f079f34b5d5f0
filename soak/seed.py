"""`python -m soak.seed`: the soak's merchant and its test keys, written through the merchants
app's services (there is no API to create a merchant). Prints JSON; the keys are shown once.
Runs inside the soak's environment (its own database)."""

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
    from apps.core.audit import Actor
    from apps.merchants import services as merchant_services

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
    print(
        json.dumps(
            {
                "merchant": merchant.public_id,
                "secret_key": secret.raw_key,
                "publishable_key": publishable.raw_key,
            }
        )
    )


if __name__ == "__main__":
    main()
