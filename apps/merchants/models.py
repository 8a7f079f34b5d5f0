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


class Seller(models.Model):
    """A marketplace seller: a connected account of a merchant, paid out from its own balance
    (ledger accounts `seller_pending:<public id>` / `seller_available:<public id>`).

    The payout bank account is kept as a token: the account (and routing) number only encrypted
    (AES-256-GCM, the seller's public id as associated data); `bank_last4`, a keyed fingerprint
    and the `ba_…` token are the only parts in clear."""

    class PayoutInterval(models.TextChoices):
        DAILY = "daily"
        WEEKLY = "weekly"
        MANUAL = "manual"

    class Weekday(models.TextChoices):
        MONDAY = "monday"
        TUESDAY = "tuesday"
        WEDNESDAY = "wednesday"
        THURSDAY = "thursday"
        FRIDAY = "friday"
        SATURDAY = "saturday"
        SUNDAY = "sunday"

    public_id = PublicIdField(prefix="sel")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="sellers")
    livemode = models.BooleanField()
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    country = models.CharField(max_length=2)
    metadata = models.JSONField(default=dict, blank=True)
    payout_interval = models.CharField(
        max_length=8, choices=PayoutInterval.choices, default=PayoutInterval.DAILY
    )
    # weekly payouts run on this day (UTC)
    payout_weekly_anchor = models.CharField(
        max_length=9, choices=Weekday.choices, default=Weekday.MONDAY
    )
    bank_token = PublicIdField(prefix="ba")
    bank_fingerprint = models.CharField(max_length=32, db_index=True)
    bank_last4 = models.CharField(max_length=4)
    bank_country = models.CharField(max_length=2)
    bank_currency = models.CharField(max_length=3)
    bank_account_holder_name = models.CharField(max_length=200)
    bank_account_encrypted = models.BinaryField()
    bank_account_key_id = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["merchant", "livemode", "-id"], name="seller_merchant_mode"),
            models.Index(fields=["payout_interval", "livemode"], name="seller_payout_interval"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(payout_interval__in=["daily", "weekly", "manual"]),
                name="seller_payout_interval_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(bank_last4__regex=r"^[0-9A-Z]{4}$"),
                name="seller_bank_last4_only",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"

    @property
    def ledger_id(self) -> str:
        """The seller id in ledger account codes and `postings.Split(seller_id=…)`."""
        return self.public_id
