from django.contrib import admin

from apps.core.admin_scoping import MerchantScopedAdmin
from apps.events.models import OutboxEvent


@admin.register(OutboxEvent)
class OutboxEventAdmin(MerchantScopedAdmin):
    list_display = ("id", "event_type", "object_id", "sequence", "created_at", "relayed_at")
    list_filter = ("event_type", "object_type")
    search_fields = ("=object_id", "=request_id")
    readonly_fields = [f.name for f in OutboxEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
