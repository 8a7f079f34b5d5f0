"""The dashboards in the admin (ops, finance, risk): Admin → Observability → Dashboards.

Registered on the attempt rollup model, whose changelist opens the ops dashboard; the pages are
admin views (staff only, CSRF, the admin's look) and every query is scoped to the staff user's
merchants (apps.core.admin_scoping)."""

from __future__ import annotations

import time

from django.contrib import admin
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from apps.core.admin_scoping import merchant_ids_for_staff
from apps.observability import dashboards
from apps.observability.models import AttemptRollup

KINDS = {
    "ops": ("Ops", dashboards.ops_dashboard),
    "finance": ("Finance", dashboards.finance_dashboard),
    "risk": ("Risk", dashboards.risk_dashboard),
}


@admin.register(AttemptRollup)
class DashboardsAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def changelist_view(self, request, extra_context=None):
        return redirect("admin:dashboards_ops")

    def get_urls(self):
        urls = [
            path(
                f"{kind}/",
                self.admin_site.admin_view(self.dashboard_view),
                {"kind": kind},
                name=f"dashboards_{kind}",
            )
            for kind in KINDS
        ]
        return urls + super().get_urls()

    def dashboard_view(self, request, kind: str):
        title, build = KINDS[kind]
        query = dashboards.query_from_params(
            request.GET, merchant_ids=merchant_ids_for_staff(request.user)
        )
        started = time.perf_counter()
        data = build(query)
        elapsed_ms = (time.perf_counter() - started) * 1000
        context = {
            **self.admin_site.each_context(request),
            "title": f"{title} dashboard",
            "kind": kind,
            "kinds": [(k, t, reverse(f"admin:dashboards_{k}")) for k, (t, _) in KINDS.items()],
            "query": query,
            "data": data,
            "elapsed_ms": round(elapsed_ms, 1),
            "ranges": list(dashboards.RANGES),
            "granularities": dashboards.GRANULARITIES,
            "params": request.GET,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, f"observability/{kind}.html", context)
