"""Connectors no longer store a URL: `base_url` becomes `endpoint` (the name of one of the
platform's endpoints for the type and mode, settings.PSP_ENDPOINTS) plus the options that go into
it (Adyen's live URL prefix, the simulator's account).

Each row's old URL is matched against the allow-list as configured when the migration runs:
- the PSP's documented host for the mode (Stripe api.stripe.com; Adyen checkout-test.adyen.com
  in test mode, <prefix>-checkout-live.adyenpayments.com/checkout in live mode, prefix kept);
- in test mode, SIMULATOR_URL/<type>/<account> (account kept).
A URL outside it is rewritten to the mode's default endpoint AND the connector is disabled
(`disabled_reason="endpoint_not_allowed"`, audited): nothing more goes to the old host, and no
payment silently starts going to a real PSP with credentials that were entered for somewhere
else. Ops re-enable it once its endpoint and credentials are right.

Reversible: going back fills `base_url` from the endpoint as configured then (a disabled row's
old URL is not restored: it was outside the allow-list).
"""

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

NOT_ALLOWED = "endpoint_not_allowed"
_ADYEN_LIVE = re.compile(
    r"^https://([A-Za-z0-9](?:[A-Za-z0-9-]{0,47}[A-Za-z0-9])?)-checkout-live\.adyenpayments\.com"
    r"/checkout$",
    re.IGNORECASE,
)
_ACCOUNT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


def _classify(connector_type: str, livemode: bool, url: str) -> dict | None:
    """The endpoint fields for an allowed URL, None for one outside the allow-list."""
    url = (url or "").strip().rstrip("/")
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.username or parts.password or parts.query or parts.fragment:
        return None
    if connector_type == "stripe" and url.lower() == "https://api.stripe.com":
        return {"endpoint": "production" if livemode else "test"}
    if connector_type == "adyen":
        if livemode:
            match = _ADYEN_LIVE.match(url)
            if match:
                return {"endpoint": "production", "live_url_prefix": match.group(1)}
        elif url.lower() in (
            "https://checkout-test.adyen.com",
            "https://checkout-test.adyen.com/checkout",
        ):
            return {"endpoint": "test"}
    simulator = (getattr(settings, "SIMULATOR_URL", "") or "").rstrip("/")
    if not livemode and simulator:
        head = f"{simulator}/{connector_type}/"
        account = url[len(head) :] if url.startswith(head) else ""
        if _ACCOUNT.match(account):
            return {"endpoint": "simulator", "simulator_account": account}
    return None


def forwards(apps, schema_editor):
    Connector = apps.get_model("routing", "Connector")
    AuditLogEntry = apps.get_model("core", "AuditLogEntry")
    now = timezone.now()
    for connector in Connector.objects.all().order_by("pk"):
        fields = _classify(connector.connector_type, connector.livemode, connector.base_url)
        if fields is not None:
            Connector.objects.filter(pk=connector.pk).update(**fields)
            continue
        Connector.objects.filter(pk=connector.pk).update(
            endpoint="production" if connector.livemode else "test",
            enabled=False,
            disabled_reason=NOT_ALLOWED,
            disabled_at=now,
            updated_at=now,
        )
        AuditLogEntry.objects.create(
            actor_type="system",
            actor="migration routing.0003",
            merchant_id=connector.merchant_id,
            livemode=connector.livemode,
            action="connector.endpoint_refused",
            object_type="connector",
            object_id=connector.public_id,
            # the old host only (no path or query): enough for ops, nothing secret
            changes={
                "base_url": [urlsplit(connector.base_url).hostname or "?", None],
                "enabled": [connector.enabled, False],
            },
        )


def backwards(apps, schema_editor):
    Connector = apps.get_model("routing", "Connector")
    simulator = (getattr(settings, "SIMULATOR_URL", "") or "http://127.0.0.1:8090").rstrip("/")
    for connector in Connector.objects.all().order_by("pk"):
        if connector.endpoint == "simulator":
            url = f"{simulator}/{connector.connector_type}/{connector.simulator_account or connector.public_id}"
        elif connector.connector_type == "adyen" and connector.livemode:
            url = f"https://{connector.live_url_prefix or 'unset'}-checkout-live.adyenpayments.com/checkout"
        elif connector.connector_type == "adyen":
            url = "https://checkout-test.adyen.com"
        else:
            url = "https://api.stripe.com"
        Connector.objects.filter(pk=connector.pk).update(base_url=url)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_audit_log_append_only"),
        ("routing", "0002_routing_profiles_health"),
    ]

    operations = [
        migrations.AddField(
            model_name="connector",
            name="endpoint",
            field=models.CharField(default="", max_length=20),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="connector",
            name="live_url_prefix",
            field=models.CharField(blank=True, max_length=49),
        ),
        migrations.AddField(
            model_name="connector",
            name="simulator_account",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.RunPython(forwards, backwards),
        # a default only so that going back can re-add the column to existing rows
        migrations.AlterField(
            model_name="connector",
            name="base_url",
            field=models.URLField(default="", max_length=300),
        ),
        migrations.RemoveField(model_name="connector", name="base_url"),
    ]
