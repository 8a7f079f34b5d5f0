from django.db import models

from apps.core.ids import PublicIdField
from apps.vault import cards


class PaymentMethod(models.Model):
    """A tokenized card. The full number exists here only as AES-256-GCM ciphertext bound to this
    row's public id; the CVC never reaches PostgreSQL (encrypted in Redis, short TTL)."""

    class Type(models.TextChoices):
        CARD = "card"

    class Brand(models.TextChoices):
        VISA = cards.VISA
        MASTERCARD = cards.MASTERCARD
        AMEX = cards.AMEX, "American Express"
        DISCOVER = cards.DISCOVER
        JCB = cards.JCB, "JCB"
        DINERS = cards.DINERS, "Diners Club"
        UNIONPAY = cards.UNIONPAY, "UnionPay"
        UNKNOWN = cards.UNKNOWN

    class Funding(models.TextChoices):
        CREDIT = "credit"
        DEBIT = "debit"
        PREPAID = "prepaid"
        UNKNOWN = "unknown"

    public_id = PublicIdField(prefix="pm")
    merchant = models.ForeignKey(
        "merchants.Merchant", on_delete=models.PROTECT, related_name="payment_methods"
    )
    livemode = models.BooleanField()
    type = models.CharField(max_length=10, choices=Type.choices, default=Type.CARD)
    brand = models.CharField(max_length=12, choices=Brand.choices)
    bin = models.CharField(max_length=6, help_text="First 6 digits of the number, any length.")
    last4 = models.CharField(max_length=4)
    exp_month = models.PositiveSmallIntegerField()
    exp_year = models.PositiveSmallIntegerField()
    funding = models.CharField(max_length=8, choices=Funding.choices)
    issuer_country = models.CharField(max_length=2, blank=True)  # "" when unknown
    # HMAC of the number: equal cards match without anyone reading the number
    fingerprint = models.CharField(max_length=64, db_index=True)
    # nonce || ciphertext || tag, associated data = public_id
    encrypted_number = models.BinaryField()
    encryption_key_id = models.CharField(max_length=32)
    billing_name = models.CharField(max_length=200, blank=True)
    billing_email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # set when the CVC was deleted from Redis after its first authorization
    cvc_discarded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["merchant", "livemode", "-id"], name="vault_pm_scope"),
            models.Index(fields=["last4"], name="vault_pm_last4"),  # support's search by last4
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(exp_month__gte=1, exp_month__lte=12),
                name="vault_pm_exp_month_range",
            ),
            # only the PCI-displayable digits live in clear columns
            models.CheckConstraint(
                condition=models.Q(bin__regex=r"^[0-9]{6}$", last4__regex=r"^[0-9]{4}$"),
                name="vault_pm_bin_last4_digits",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.brand} ••••{self.last4} ({self.public_id})"

    def __repr__(self) -> str:  # last4 only: never the number, never the ciphertext
        return f"<PaymentMethod {self.public_id} {self.brand} last4={self.last4}>"
