"""A merchant's account at one PSP, and everything the platform needs to call it."""

from django.db import models

from apps.connectors.changes import connector_changed
from apps.core.ids import PublicIdField


class Connector(models.Model):
    """A merchant's account at one PSP (merchant connector account)."""

    class Type(models.TextChoices):
        STRIPE = "stripe"
        ADYEN = "adyen"

    public_id = PublicIdField(prefix="mca")
    merchant = models.ForeignKey(
        "merchants.Merchant", on_delete=models.PROTECT, related_name="connectors"
    )
    livemode = models.BooleanField(default=False)
    name = models.CharField(max_length=100)
    connector_type = models.CharField(max_length=20, choices=Type.choices)
    # Where its requests go is the platform's choice (apps/connectors/endpoints.py): the name of one
    # of the endpoints settings.PSP_ENDPOINTS allows for the type and mode, never a URL
    endpoint = models.CharField(max_length=20)
    # Adyen live only: the company's live URL prefix, part of the live host
    live_url_prefix = models.CharField(max_length=49, blank=True)
    # the simulator endpoint only: the simulated account (`/<type>/<account>`)
    simulator_account = models.CharField(max_length=64, blank=True)
    # AES-256-GCM (apps.core.crypto): JSON of the PSP credentials, and the webhook secret
    credentials_encrypted = models.BinaryField()
    credentials_key_id = models.CharField(max_length=40)
    credentials_hint = models.CharField(max_length=40, blank=True)  # e.g. "sk_test_…a1b2"
    enabled = models.BooleanField(default=True)
    # why a connector is disabled: "manual" (staff or API) or "auto_error_rate" (health check;
    # only those are re-enabled automatically when probes succeed)
    disabled_reason = models.CharField(max_length=40, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    priority = models.PositiveIntegerField(default=100)  # lower first, until routing rules exist
    supported_currencies = models.JSONField(default=list)  # ["eur", "usd"]; [] = none
    supported_brands = models.JSONField(default=list, blank=True)  # [] = all
    supported_countries = models.JSONField(default=list, blank=True)  # [] = all
    # fee schedule (apps.connectors.fees):
    # [{"brand": "*", "region": "*", "currency": "*", "fixed": 25, "percent_bps": 140}]
    fee_schedule = models.JSONField(default=list, blank=True)
    authorization_window_days = models.PositiveSmallIntegerField(default=7)
    settlement_delay_days = models.PositiveSmallIntegerField(default=2)
    connect_timeout_ms = models.PositiveIntegerField(default=2000)
    read_timeout_ms = models.PositiveIntegerField(default=10000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # the table keeps the name it had when connectors lived in the routing app
        db_table = "routing_connector"
        ordering = ["priority", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "livemode", "name"], name="connector_name_unique_per_merchant"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.connector_type})"

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        connector_changed(self.merchant_id, self.livemode)  # routing caches the row
