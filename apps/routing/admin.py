from django.contrib import admin

from apps.core.admin_scoping import MerchantScopedAdmin
from apps.routing.models import Connector


@admin.register(Connector)
class ConnectorAdmin(MerchantScopedAdmin):
    list_display = ("name", "public_id", "merchant", "connector_type", "enabled", "priority",
                    "livemode", "base_url")
    list_filter = ("connector_type", "enabled", "livemode")
    list_select_related = ("merchant",)
    search_fields = ("=public_id", "name", "merchant__name")
    exclude = ("credentials_encrypted", "credentials_key_id")
    readonly_fields = ("public_id", "credentials_hint", "created_at", "updated_at")
