"""The merchant's setup, as a merchant does it through the API (after `soak.seed` made the
merchant, its keys and two connectors on the simulator, one per PSP dialect): a routing profile
that splits payments 50/50 between them and fails over to the other; a webhook endpoint for
every event. Then the simulated PSPs are pointed at our inbound webhook URLs."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

import requests

from soak.config import ROOT
from soak.procs import StackError
from soak.receiver import MerchantEndpoint

# the connectors' simulator accounts (`<SIMULATOR_URL>/<type>/<account>`)
SIM_NAMES = {"stripe": "soak-stripe", "adyen": "soak-adyen"}
CREDENTIALS = {
    "stripe": {"api_key": "sk_test_soak_stripe", "webhook_secret": "whsec_soakstripe"},
    "adyen": {
        "api_key": "AQE_soak_adyen",
        "merchant_account": "SoakShopECOM",
        "hmac_key": "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056",
    },
}
FEES = {
    "stripe": [{"brand": "*", "fixed": 25, "percent_bps": 140}],
    "adyen": [{"brand": "*", "fixed": 10, "percent_bps": 160}],
}
READ_TIMEOUT_MS = 2000  # the PSP faults hold answers longer than this (timeouts, lost answers)
SLOW_CARD_DELAY_MS = 1500


@dataclass
class Setup:
    merchant: str
    secret_key: str
    publishable_key: str
    connectors: dict[str, str]  # dialect -> connector id (mca_…)
    profile: str
    endpoint: str


# 0.5 s doubling: the last of 10 attempts goes out ~4 minutes after the first
WEBHOOK_MAX_ATTEMPTS = 10


def _post(api_url: str, key: str, path: str, body: dict) -> dict:
    response = requests.post(
        f"{api_url}{path}",
        json=body,
        headers={
            "Authorization": f"Bearer {key}",
            "Idempotency-Key": f"soak-setup-{path}-" + body.get("name", body.get("url", "")),
        },
        timeout=30,
    )
    if response.status_code not in (200, 201):
        raise StackError(f"setup: POST {path} answered {response.status_code}: {response.text}")
    return response.json()


def configure(stack, endpoint: MerchantEndpoint) -> Setup:
    seeded = subprocess.run(
        [stack.python(), "-m", "soak.seed"],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if seeded.returncode != 0:
        raise StackError(f"soak.seed failed:\n{seeded.stderr[-3000:]}")
    keys = json.loads(seeded.stdout.strip().splitlines()[-1])
    sk = keys["secret_key"]

    # the connectors were made by soak.seed on the platform's simulator endpoint (the merchant
    # API never says where a connector's requests go)
    connectors = keys["connectors"]

    a, b = connectors["stripe"], connectors["adyen"]
    profile = _post(
        stack.api_url,
        sk,
        "/v1/routing_profiles",
        {
            "name": "Soak split",
            "activate": True,
            "rules": [
                {
                    "name": "50/50 between the two PSPs",
                    "match": "all",
                    "conditions": [],
                    "strategy": {
                        "type": "weighted",
                        "weights": [{"connector": a, "weight": 50}, {"connector": b, "weight": 50}],
                    },
                }
            ],
            "fallback": [a, b],
        },
    )
    hook = _post(
        stack.api_url,
        sk,
        "/v1/webhook_endpoints",
        {"url": endpoint.url, "enabled_events": ["*"], "description": "soak merchant"},
    )
    endpoint.set_secret(hook["secret"])

    for dialect, connector_id in connectors.items():
        name = SIM_NAMES[dialect]
        secret = CREDENTIALS[dialect].get("hmac_key" if dialect == "adyen" else "webhook_secret")
        for method, path, body in (
            (
                "PUT",
                f"/_sim/connectors/{name}/webhook",
                {
                    "url": f"{stack.api_url}/webhooks/psp/{connector_id}",
                    "secret": secret,
                    "dialect": dialect,
                    # as the real PSPs, which retry a notification for days: an outage of
                    # ours longer than the simulator's default 7.5 s of retries must not lose
                    # it for good (an Adyen refund has no API lookup, only its notification)
                    "max_attempts": WEBHOOK_MAX_ATTEMPTS,
                },
            ),
            (
                "PATCH",
                f"/_sim/connectors/{name}/settings",
                {"slow_card_delay_ms": SLOW_CARD_DELAY_MS},
            ),
        ):
            response = requests.request(method, f"{stack.sim_url}{path}", json=body, timeout=10)
            if response.status_code != 200:
                raise StackError(f"setup: {method} {path}: {response.status_code} {response.text}")
    return Setup(
        merchant=keys["merchant"],
        secret_key=sk,
        publishable_key=keys["publishable_key"],
        connectors=connectors,
        profile=profile["id"],
        endpoint=hook["id"],
    )
