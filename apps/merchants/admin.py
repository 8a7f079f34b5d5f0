from django.contrib import admin, messages
from guardian.admin import GuardedModelAdmin

from apps.core.admin_scoping import MerchantScopedAdmin
from apps.core.audit import Actor
from apps.merchants import services
from apps.merchants.models import ApiKey, Merchant


@admin.register(Merchant)
class MerchantAdmin(GuardedModelAdmin, MerchantScopedAdmin):
    merchant_path = "id"
    list_display = ("name", "public_id", "email", "country", "live_enabled", "created_at")
    search_fields = ("name", "public_id", "email")
    list_filter = ("live_enabled",)
    readonly_fields = ("public_id", "created_at", "updated_at")
    fields = (
        "public_id",
        "name",
        "email",
        "country",
        "metadata",
        "live_enabled",
        "created_at",
        "updated_at",
    )


@admin.register(ApiKey)
class ApiKeyAdmin(MerchantScopedAdmin):
    list_display = (
        "display",
        "public_id",
        "merchant",
        "kind",
        "livemode",
        "created_at",
        "expires_at",
        "revoked_at",
    )
    list_filter = ("kind", "livemode")
    list_select_related = ("merchant",)
    search_fields = ("public_id", "display", "merchant__name", "merchant__public_id")
    readonly_fields = [f.name for f in ApiKey._meta.fields if f.name != "key_hash"]
    exclude = ("key_hash",)
    actions = ["revoke_keys"]

    def has_add_permission(self, request):
        return False  # keys are issued by the API or `manage.py` so the secret is shown once

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke selected keys", permissions=["manage_keys"])
    def revoke_keys(self, request, queryset):
        for key in queryset:
            services.api_key_revoke(api_key=key, actor=Actor.staff(request.user))
        messages.success(request, f"Revoked {queryset.count()} key(s).")

    def has_manage_keys_permission(self, request):
        return request.user.has_perm("core.manage_api_keys")
