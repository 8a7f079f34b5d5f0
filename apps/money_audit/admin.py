"""Money audit runs in the back-office: read-only evidence. A run names offenders of every
merchant, so only staff who see all merchants (superusers, the `admin` group) see runs, as for
the ledger's drift checks."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from apps.core.admin_scoping import staff_sees_all
from apps.money_audit.models import MoneyAuditCheck, MoneyAuditRun

SHOWN_OFFENDERS = 100


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        return {}


class MoneyAuditCheckInline(ReadOnlyMixin, admin.TabularInline):
    model = MoneyAuditCheck
    fields = ("name", "status", "offender_count", "title", "offender_list", "detail")
    readonly_fields = fields
    extra = 0
    can_delete = False

    @admin.display(description="offenders")
    def offender_list(self, check: MoneyAuditCheck):
        shown = check.offenders[:SHOWN_OFFENDERS]
        items = format_html_join(
            "", "<li><code>{}</code> {}</li>", ((o["id"], o["detail"]) for o in shown)
        )
        more = check.offender_count - len(shown)
        tail = format_html("<li>… and {} more</li>", more) if more > 0 else ""
        return format_html("<ul>{}{}</ul>", items, tail) if shown else "-"


@admin.register(MoneyAuditRun)
class MoneyAuditRunAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "started_at",
        "trigger",
        "status",
        "checks_broken",
        "checks_held",
        "checks_skipped",
        "psp_record_url",
    )
    list_filter = ("status", "trigger")
    fields = (
        "started_at",
        "finished_at",
        "trigger",
        "status",
        "checks_held",
        "checks_broken",
        "checks_skipped",
        "psp_record_url",
        "drift_check_run_id",
        "parameters_pretty",
        "figures_pretty",
    )
    readonly_fields = fields
    inlines = [MoneyAuditCheckInline]
    show_full_result_count = False

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset if staff_sees_all(request.user) else queryset.none()

    @admin.display(description="parameters")
    def parameters_pretty(self, run: MoneyAuditRun):
        return format_html("<pre>{}</pre>", json.dumps(run.parameters, indent=2))

    @admin.display(description="figures")
    def figures_pretty(self, run: MoneyAuditRun):
        return format_html("<pre>{}</pre>", json.dumps(run.figures, indent=2, sort_keys=True))
