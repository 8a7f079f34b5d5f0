from django.contrib import admin

from apps.core.admin_scoping import MerchantScopedAdmin
from apps.vault.models import PaymentMethod


@admin.register(PaymentMethod)
class PaymentMethodAdmin(MerchantScopedAdmin):
    """Read-only. Shows what support needs to recognise a card, never the ciphertext."""

    merchant_path = "merchant_id"
    list_display = (
        "public_id",
        "merchant",
        "brand",
        "last4",
        "expiry",
        "funding",
        "issuer_country",
        "fingerprint",
        "livemode",
        "created_at",
    )
    list_filter = ("brand", "funding", "livemode")
    list_select_related = ("merchant",)
    search_fields = ("=public_id", "=last4", "=fingerprint")
    fields = (
        "public_id",
        "merchant",
        "livemode",
        "type",
        "brand",
        "bin",
        "last4",
        "expiry",
        "funding",
        "issuer_country",
        "fingerprint",
        "encryption_key_id",
        "billing_name",
        "billing_email",
        "created_at",
        "cvc_discarded_at",
    )
    readonly_fields = fields
    ordering = ("-id",)

    @admin.display(description="expiry")
    def expiry(self, obj: PaymentMethod) -> str:
        return f"{obj.exp_month:02d}/{obj.exp_year}"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
