from django.db import models, transaction

from apps.core.ids import PublicIdField


def routing_changed(merchant_id: int, livemode: bool) -> None:
    """Invalidates every process's compiled routing for the merchant: now (readers reload,
    possibly the pre-commit state) and again after commit (readers reload the new state)."""
    from apps.routing import health

    health.generation_bump(merchant_id, livemode)
    transaction.on_commit(lambda: health.generation_bump(merchant_id, livemode))


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
    # Where its requests go is the platform's choice (apps/routing/endpoints.py): the name of one
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
    # fee schedule (apps.routing.fees):
    # [{"brand": "*", "region": "*", "currency": "*", "fixed": 25, "percent_bps": 140}]
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
            models.UniqueConstraint(
                fields=["merchant", "livemode", "name"], name="connector_name_unique_per_merchant"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.connector_type})"

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        routing_changed(self.merchant_id, self.livemode)  # compiled routing caches the row


class RoutingProfile(models.Model):
    """A merchant's routing configuration. Its content lives in immutable versions; at most
    one profile per merchant and mode is active, and it routes with its `active_version`."""

    public_id = PublicIdField(prefix="rp")
    merchant = models.ForeignKey(
        "merchants.Merchant", on_delete=models.PROTECT, related_name="routing_profiles"
    )
    livemode = models.BooleanField(default=False)
    name = models.CharField(max_length=100)
    is_active = models.BooleanField(default=False)
    active_version = models.ForeignKey(
        "RoutingProfileVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    activated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "livemode"],
                condition=models.Q(is_active=True),
                name="routing_one_active_profile_per_merchant",
            ),
            models.CheckConstraint(
                condition=models.Q(is_active=False) | models.Q(active_version__isnull=False),
                name="routing_active_profile_has_version",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        routing_changed(self.merchant_id, self.livemode)


class RoutingProfileVersion(models.Model):
    """One immutable revision of a profile: ordered rules and a fallback list.

    `rules`: [{"name", "match": "all"|"any", "conditions": [{"field", "op", "value"}],
    "strategy": {"type", ...}}]; `fallback`: [connector public ids]. Validated by
    `apps.routing.rules` before it is stored; never edited afterwards."""

    profile = models.ForeignKey(RoutingProfile, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    rules = models.JSONField(default=list)
    fallback = models.JSONField(default=list, blank=True)
    note = models.CharField(max_length=500, blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["profile_id", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["profile", "number"], name="routing_version_number_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.profile.name} v{self.number}"


class RoutingSettings(models.Model):
    """Per-merchant failover limits; empty fields fall back to the platform settings
    (CONFIRM_MAX_ATTEMPTS, CONFIRM_TIME_BUDGET_SECONDS)."""

    merchant = models.OneToOneField(
        "merchants.Merchant", on_delete=models.PROTECT, related_name="routing_settings"
    )
    max_attempts = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="PSP attempts per confirm, failover included (1-10)."
    )
    time_budget_seconds = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Wall time one confirm may spend on failover (1-300)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "routing settings"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(max_attempts__isnull=True)
                | models.Q(max_attempts__gte=1, max_attempts__lte=10),
                name="routing_settings_max_attempts_range",
            ),
            models.CheckConstraint(
                condition=models.Q(time_budget_seconds__isnull=True)
                | models.Q(time_budget_seconds__gte=1, time_budget_seconds__lte=300),
                name="routing_settings_time_budget_range",
            ),
        ]

    def __str__(self) -> str:
        return f"routing settings of merchant {self.merchant_id}"

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        for livemode in (False, True):  # the limits are part of the compiled routing
            routing_changed(self.merchant_id, livemode)
