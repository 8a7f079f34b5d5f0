"""Radar: value lists, rules (versioned), reviews and blocked payments.

A list or rule with `merchant` NULL is platform-wide, managed by the platform's risk staff in
the admin; every merchant's rules may name it (`@alias`), a merchant's own list of the same
alias wins."""

from django.db import models
from django.db.models import Q

from apps.core.ids import PublicIdField


class ItemType(models.TextChoices):
    CARD_FINGERPRINT = "card_fingerprint"
    CARD_BIN = "card_bin"
    EMAIL = "email"
    EMAIL_DOMAIN = "email_domain"
    IP_ADDRESS = "ip_address"
    COUNTRY = "country"  # an IP country or a card's issuing country
    STRING = "string"  # compared with any string attribute, metadata included


class ValueList(models.Model):
    public_id = PublicIdField(prefix="rsl")
    merchant = models.ForeignKey(
        "merchants.Merchant",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty: a platform-wide list, every merchant's rules may name it.",
    )
    livemode = models.BooleanField(default=False)
    alias = models.CharField(max_length=100)
    name = models.CharField(max_length=100)
    item_type = models.CharField(max_length=30, choices=ItemType.choices)
    metadata = models.JSONField(default=dict, blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "livemode", "alias"],
                condition=Q(merchant__isnull=False),
                name="risk_value_list_alias_unique",
            ),
            models.UniqueConstraint(
                fields=["livemode", "alias"],
                condition=Q(merchant__isnull=True),
                name="risk_platform_value_list_alias_unique",
            ),
            models.CheckConstraint(
                condition=Q(alias__regex=r"^[A-Za-z0-9_]{1,100}$"), name="risk_value_list_alias"
            ),
        ]

    def __str__(self) -> str:
        return f"@{self.alias}"


class ValueListItem(models.Model):
    public_id = PublicIdField(prefix="rsli")
    value_list = models.ForeignKey(ValueList, on_delete=models.CASCADE, related_name="items")
    value = models.CharField(max_length=800)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["value_list", "value"], name="risk_item_unique"),
        ]

    def __str__(self) -> str:
        return self.value


class RuleAction(models.TextChoices):
    REQUEST_3DS = "request_3ds"
    ALLOW = "allow"
    BLOCK = "block"
    REVIEW = "review"


class RiskRule(models.Model):
    """A merchant's rule. Its predicate and action live in immutable versions (as routing
    profiles do); the row holds the current one, compiled for evaluation."""

    public_id = PublicIdField(prefix="rule")
    merchant = models.ForeignKey(
        "merchants.Merchant", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    livemode = models.BooleanField(default=False)
    action = models.CharField(max_length=20, choices=RuleAction.choices)
    predicate = models.CharField(max_length=2000)
    description = models.CharField(max_length=500, blank=True)
    enabled = models.BooleanField(default=True)
    # a platform default (card testing, mismatched countries): shipped disabled
    default_key = models.CharField(max_length=40, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "livemode", "default_key"],
                condition=~Q(default_key=""),
                name="risk_rule_default_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} if {self.predicate}"


class RiskRuleVersion(models.Model):
    rule = models.ForeignKey(RiskRule, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    action = models.CharField(max_length=20, choices=RuleAction.choices)
    predicate = models.CharField(max_length=2000)
    enabled = models.BooleanField()
    note = models.CharField(max_length=500, blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["rule_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["rule", "number"], name="risk_rule_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.rule_id} v{self.number}"


class Review(models.Model):
    """A payment Radar put in review: authorized, forced to manual capture, waiting for staff."""

    class Status(models.TextChoices):
        OPEN = "open"
        APPROVED = "approved"
        REJECTED = "rejected"  # canceled (or refunded) by staff
        CLOSED = "closed"  # the payment moved on without a decision (captured, canceled, …)

    public_id = PublicIdField(prefix="prv")
    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT, related_name="+")
    livemode = models.BooleanField(default=False)
    payment_intent = models.CharField(max_length=40, db_index=True)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    # the merchant asked for automatic capture: approving captures
    capture_on_approve = models.BooleanField(default=False)
    rule = models.CharField(max_length=40, blank=True)
    predicate = models.CharField(max_length=2000, blank=True)
    risk_score = models.PositiveSmallIntegerField(default=0)
    risk_level = models.CharField(max_length=10, blank=True)
    opened_at = models.DateTimeField(auto_now_add=True, db_index=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "opened_at"], name="risk_review_open")]
        permissions = [("decide_review", "Approve or reject a payment in review")]

    def __str__(self) -> str:
        return f"{self.public_id} ({self.payment_intent})"


class BlockedPayment(models.Model):
    """A payment Radar blocked before any PSP was called, with the rule that matched."""

    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT, related_name="+")
    livemode = models.BooleanField(default=False)
    payment_intent = models.CharField(max_length=40, db_index=True)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    rule = models.CharField(max_length=40, blank=True)
    predicate = models.CharField(max_length=2000, blank=True)
    risk_score = models.PositiveSmallIntegerField(default=0)
    risk_level = models.CharField(max_length=10, blank=True)
    signals = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.payment_intent


class DeclineDecision(models.TextChoices):
    RETRY_ELSEWHERE = "retry_elsewhere"  # fail over to the route's next connector
    STEP_UP_3DS = "step_up_3ds"  # once, on the same connector, with 3-D Secure
    DO_NOT_RETRY = "do_not_retry"


class DeclineHandling(models.Model):
    """What to do after a decline, per connector type and code (in the spirit of Hyperswitch's
    gateway status map). `code`: the PSP's own code (raw) or our normalized decline code; the
    most specific row wins (this connector type's raw code, its normalized code, then `*`).
    Seeded from the hard/soft table of apps/psp_adapters/decline_codes.py; ops edit it."""

    connector_type = models.CharField(max_length=20, default="*", help_text="stripe, adyen or *")
    code = models.CharField(max_length=100)
    decision = models.CharField(max_length=20, choices=DeclineDecision.choices)
    note = models.CharField(max_length=500, blank=True)
    updated_by = models.CharField(max_length=150, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["connector_type", "code"]
        constraints = [
            models.UniqueConstraint(fields=["connector_type", "code"], name="risk_decline_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.connector_type}/{self.code}: {self.decision}"


class SurchargeRule(models.Model):
    """A merchant's surcharge for the cards it matches ("*": any), in one currency: a
    percentage (basis points) and/or a fixed amount, at most `cap`. Never on consumer cards
    issued in the EEA or the UK (PSD2 / the UK's ban), whatever the rule says."""

    public_id = PublicIdField(prefix="srch")
    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT, related_name="+")
    livemode = models.BooleanField(default=False)
    currency = models.CharField(max_length=3)
    card_brand = models.CharField(max_length=20, default="*")
    card_funding = models.CharField(max_length=10, default="*")
    card_country = models.CharField(max_length=2, default="*")
    percent_bps = models.PositiveIntegerField(default=0, help_text="basis points: 150 = 1.5 %")
    fixed = models.PositiveBigIntegerField(default=0, help_text="minor units of `currency`")
    cap = models.PositiveBigIntegerField(null=True, blank=True, help_text="minor units")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(percent_bps__lte=10000), name="risk_surcharge_percent_max"
            ),
            models.CheckConstraint(
                condition=Q(cap__isnull=True) | Q(fixed__lte=models.F("cap")),
                name="risk_surcharge_fixed_within_cap",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.currency} {self.card_brand}/{self.card_funding}"
