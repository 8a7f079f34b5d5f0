from django.db import models

from apps.core.ids import PublicIdField


class Merchant(models.Model):
    public_id = PublicIdField(prefix="acct")
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    country = models.CharField(max_length=2, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # live mode is switched on by staff once the merchant is onboarded; until then live keys fail
    live_enabled = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("serve_merchant", "Can serve this merchant in the back-office")]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"

    # DRF puts the authenticated merchant in request.user
    @property
    def is_authenticated(self) -> bool:
        return True


class ApiKey(models.Model):
    class Kind(models.TextChoices):
        SECRET = "secret"
        PUBLISHABLE = "publishable"

    public_id = PublicIdField(prefix="key")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="api_keys")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    livemode = models.BooleanField()
    # sha256 of the full key; the key itself is shown once and never stored
    key_hash = models.CharField(max_length=64, unique=True)
    display = models.CharField(max_length=40)  # "sk_test_AbCd…WxYz"
    name = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)  # set when rolled: grace period
    revoked_at = models.DateTimeField(null=True, blank=True)
    rolled_to = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="rolled_from"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["merchant", "livemode", "kind"])]

    def __str__(self) -> str:
        return self.display

    @property
    def is_secret(self) -> bool:
        return self.kind == self.Kind.SECRET
