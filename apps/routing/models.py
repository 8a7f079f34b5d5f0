from django.db import models

from apps.core.ids import PublicIdField


def routing_changed(merchant_id: int, livemode: bool) -> None:
    """Every process's compiled routing for the merchant is stale (apps.routing.cache)."""
    from apps.routing.cache import routing_changed as invalidate

    invalidate(merchant_id, livemode)


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
