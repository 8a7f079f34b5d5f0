"""routing.0003 turns each connector's stored URL into one of the platform's endpoints; a URL
outside the allow-list is rewritten to the mode's default endpoint and the connector disabled
(audited). The migration is reversible."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("routing", "0002_routing_profiles_health")]
AFTER = [("routing", "0003_connector_endpoint")]
SIM = "http://127.0.0.1:8090"

ROWS = [
    # (name, type, livemode, base_url) -> expected (endpoint, prefix, account, enabled)
    ("stripe-test", "stripe", False, "https://api.stripe.com", ("test", "", "", True)),
    ("stripe-live", "stripe", True, "https://api.stripe.com/", ("production", "", "", True)),
    ("adyen-test", "adyen", False, "https://checkout-test.adyen.com", ("test", "", "", True)),
    (
        "adyen-live",
        "adyen",
        True,
        "https://1797a841fbb37ca7-AdyenDemo-checkout-live.adyenpayments.com/checkout",
        ("production", "1797a841fbb37ca7-AdyenDemo", "", True),
    ),
    ("sim", "adyen", False, f"{SIM}/adyen/adyen-sim", ("simulator", "", "adyen-sim", True)),
    ("evil", "stripe", False, "http://127.0.0.1:9999/steal", ("test", "", "", False)),
    ("evil-live", "adyen", True, "https://attacker.example/x", ("production", "", "", False)),
    ("sim-live", "stripe", True, f"{SIM}/stripe/x", ("production", "", "", False)),
    ("creds", "stripe", False, "https://user:pw@api.stripe.com", ("test", "", "", False)),
]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_stored_urls_become_endpoints_and_the_rest_is_disabled(merchant, settings):
    settings.SIMULATOR_URL = SIM
    old = _migrate(BEFORE)
    try:
        Connector = old.get_model("routing", "Connector")
        for index, (name, connector_type, livemode, url, _) in enumerate(ROWS):
            Connector.objects.create(
                public_id=f"mca_migration{index}",
                merchant_id=merchant.pk,
                livemode=livemode,
                name=name,
                connector_type=connector_type,
                base_url=url,
                credentials_encrypted=b"x",
                credentials_key_id="dev1",
                supported_currencies=["eur"],
            )

        new = _migrate(AFTER)
        Connector = new.get_model("routing", "Connector")
        AuditLogEntry = new.get_model("core", "AuditLogEntry")
        for name, _, _, _, (endpoint, prefix, account, enabled) in ROWS:
            row = Connector.objects.get(name=name)
            assert (row.endpoint, row.live_url_prefix, row.simulator_account, row.enabled) == (
                endpoint,
                prefix,
                account,
                enabled,
            ), name
            assert row.disabled_reason == ("" if enabled else "endpoint_not_allowed"), name
        refused = AuditLogEntry.objects.filter(action="connector.endpoint_refused")
        assert {e.changes["base_url"][0] for e in refused} == {
            "127.0.0.1",
            "attacker.example",
            "api.stripe.com",
        }
        assert refused.count() == 4

        back = _migrate(BEFORE)  # reversible: base_url refilled from the endpoint
        Connector = back.get_model("routing", "Connector")
        urls = dict(Connector.objects.values_list("name", "base_url"))
        assert urls["adyen-live"] == ROWS[3][3]
        assert urls["sim"] == f"{SIM}/adyen/adyen-sim"
        assert urls["evil"] == "https://api.stripe.com"  # never the old host again
    finally:
        # every app's latest migration again, not only routing's: going back to BEFORE also
        # unapplied the later migrations of the apps that depend on routing (intents, …)
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
