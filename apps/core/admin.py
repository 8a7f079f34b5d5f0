from django.contrib import admin

from apps.core.admin_scoping import MerchantScopedAdmin
from apps.core.models import AuditLogEntry


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(MerchantScopedAdmin):
    list_display = (
        "created_at",
        "actor_type",
        "actor",
        "action",
        "object_type",
        "object_id",
        "request_id",
    )
    list_filter = ("actor_type", "object_type", "action")
    search_fields = ("object_id", "actor", "request_id")
    readonly_fields = [f.name for f in AuditLogEntry._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
