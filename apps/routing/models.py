from django.db import models

from apps.core.ids import PublicIdField


class Connector(models.Model):
    """A merchant's account at one PSP (merchant connector account)."""

    class Type(models.TextChoices):
        STRIPE = "stripe"
        ADYEN = "adyen"

    public_id = PublicIdField(prefix="mca")
    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT,
                                 related_name="connectors")
    livemode = models.BooleanField(default=False)
    name = models.CharField(max_length=100)
    connector_type = models.CharField(max_length=20, choices=Type.choices)
    base_url = models.URLField(max_length=300)
    # AES-256-GCM (apps.core.crypto): JSON of the PSP credentials, and the webhook secret
    credentials_encrypted = models.BinaryField()
    credentials_key_id = models.CharField(max_length=40)
    credentials_hint = models.CharField(max_length=40, blank=True)  # e.g. "sk_test_…a1b2"
    enabled = models.BooleanField(default=True)
    priority = models.PositiveIntegerField(default=100)  # lower first, until routing rules exist
    supported_currencies = models.JSONField(default=list)  # ["eur", "usd"]; [] = none
    supported_brands = models.JSONField(default=list, blank=True)  # [] = all
    supported_countries = models.JSONField(default=list, blank=True)  # [] = all
    # fee schedule: [{"brand": "*", "region": "*", "currency": "*", "fixed": 25, "percent_bps": 140}]
    fee_schedule = models.JSONField(default=list, blank=True)
    authorization_window_days = models.PositiveSmallIntegerField(default=7)
    settlement_delay_days = models.PositiveSmallIntegerField(default=2)
    connect_timeout_ms = models.PositiveIntegerField(default=2000)
    read_timeout_ms = models.PositiveIntegerField(default=10000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "id"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "livemode", "name"],
                                    name="connector_name_unique_per_merchant"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.connector_type})"
