"""Finance back-office for reconciliation (issue 14, item 6).

- Profiles: per connector tolerance, settlement window, agreed fees; actions "reconcile now" and
  "upload a settlement report".
- Runs: the list with totals (matched amount, discrepancies by kind, fees estimated vs actual);
  a run's discrepancies as CSV.
- Reports: each file with its hash, status and, when refused, file, line, column and reason.
- Discrepancies: the queue (oldest first; filters by connector, merchant, kind, status, amount),
  each with both sides side by side and its resolution actions, each behind its own permission
  and through `services` (adjusting journal + audit log).
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from apps.core.admin_scoping import MerchantScopedAdmin
from apps.core.audit import Actor
from apps.core.errors import PlatformError
from apps.reconciliation import selectors, services
from apps.reconciliation.models import (
    Discrepancy,
    ReconciliationProfile,
    ReconciliationRun,
    SettlementReport,
)


class _ReadOnly:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _pretty(value) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


class UploadForm(forms.Form):
    file = forms.FileField(help_text="A settlement report in the connector's format (CSV).")


@admin.register(ReconciliationProfile)
class ReconciliationProfileAdmin(MerchantScopedAdmin):
    merchant_path = "connector__merchant_id"
    list_display = (
        "connector",
        "enabled",
        "tolerance",
        "settlement_window_days",
        "settlement_delay_days",
        "fee_fixed",
        "fee_components_bps",
        "report_cursor",
        "fees_estimated_vs_actual",
        "upload_link",
    )
    list_select_related = ("connector",)
    raw_id_fields = ("connector",)
    actions = ["reconcile_now"]

    @admin.action(description="Reconcile now (fetch, match, post)")
    def reconcile_now(self, request, queryset):
        if not request.user.has_perm("reconciliation.reconcile_now"):
            raise PermissionDenied
        for profile in queryset.select_related("connector"):
            run = services.reconciliation_run(
                connector=profile.connector, trigger="admin", actor=Actor.staff(request.user)
            )
            level = messages.SUCCESS if run.status == "succeeded" else messages.ERROR
            self.message_user(
                request, f"{run.public_id} {run.status}: {services.summary_line(run)}", level
            )

    def get_urls(self):
        return [
            path(
                "<int:pk>/upload/",
                self.admin_site.admin_view(self.upload_view),
                name="reconciliation_profile_upload",
            ),
            *super().get_urls(),
        ]

    def upload_view(self, request, pk: int):
        profile = get_object_or_404(self.get_queryset(request), pk=pk)
        if not request.user.has_perm("reconciliation.reconcile_now"):
            raise PermissionDenied
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            report, is_new, run = services.report_upload(
                connector=profile.connector,
                name=upload.name,
                chunks=upload.chunks(),
                actor=Actor.staff(request.user),
            )
            if not is_new:
                self.message_user(
                    request, f"{report.name}: already received ({report.status})", messages.WARNING
                )
            elif report.status == SettlementReport.Status.REFUSED or run.reports_refused:
                report.refresh_from_db()
                self.message_user(request, f"Refused: {report.error}", messages.ERROR)
            else:
                self.message_user(request, f"{run.public_id}: {services.summary_line(run)}")
            return HttpResponseRedirect(
                reverse("admin:reconciliation_reconciliationrun_changelist")
            )
        return TemplateResponse(
            request,
            "admin/reconciliation/upload.html",
            {
                **self.admin_site.each_context(request),
                "form": form,
                "profile": profile,
                "title": f"Upload a settlement report for {profile.connector}",
            },
        )

    @admin.display(description="fees estimated → actual (matched captures)")
    def fees_estimated_vs_actual(self, profile):
        rows = selectors.fee_comparison(connector_id=profile.connector_id)
        return (
            ", ".join(
                f"{r['estimated']} → {r['actual']} {r['currency']} ({r['lines']} lines)"
                for r in rows
            )
            or "-"
        )

    @admin.display(description="upload")
    def upload_link(self, profile):
        url = reverse("admin:reconciliation_profile_upload", args=[profile.pk])
        return format_html('<a href="{}">upload a report</a>', url)


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(_ReadOnly, MerchantScopedAdmin):
    list_display = (
        "public_id",
        "connector",
        "run_date",
        "trigger",
        "status",
        "matched",
        "matched_amount",
        "discrepancies",
        "fees",
        "reports_loaded",
        "reports_refused",
        "started_at",
    )
    list_filter = ("status", "trigger", "connector")
    list_select_related = ("connector",)
    readonly_fields = (
        "public_id",
        "connector",
        "run_date",
        "trigger",
        "status",
        "started_at",
        "finished_at",
        "reports_loaded",
        "reports_refused",
        "reports_already_loaded",
        "error",
        "counts_pretty",
        "amounts_pretty",
        "timings_pretty",
        "export_link",
    )
    fields = readonly_fields
    actions = ["export_csv"]

    @admin.display(description="matched")
    def matched(self, run):
        return run.counts.get("lines", {}).get("matched", {}).get("count", 0)

    @admin.display(description="matched net")
    def matched_amount(self, run):
        return (
            ", ".join(f"{m.get('matched_net', 0)} {c}" for c, m in sorted(run.amounts.items()))
            or "-"
        )

    @admin.display(description="discrepancies by kind")
    def discrepancies(self, run):
        kinds = run.counts.get("discrepancies", {})
        return ", ".join(f"{k}: {v['count']}" for k, v in sorted(kinds.items())) or "none"

    @admin.display(description="fees actual / estimated")
    def fees(self, run):
        return (
            ", ".join(
                f"{m.get('fees_actual', 0)} / {m.get('fees_estimated', 0)} {c}"
                for c, m in sorted(run.amounts.items())
            )
            or "-"
        )

    @admin.display(description="counts")
    def counts_pretty(self, run):
        return _pretty(run.counts)

    @admin.display(description="amounts")
    def amounts_pretty(self, run):
        return _pretty(run.amounts)

    @admin.display(description="time per phase (s)")
    def timings_pretty(self, run):
        return _pretty(run.timings)

    @admin.display(description="discrepancies CSV")
    def export_link(self, run):
        url = reverse("admin:reconciliation_run_export", args=[run.pk])
        return format_html('<a href="{}">download</a>', url)

    def get_urls(self):
        return [
            path(
                "<int:pk>/export.csv",
                self.admin_site.admin_view(self.export_view),
                name="reconciliation_run_export",
            ),
            *super().get_urls(),
        ]

    def export_view(self, request, pk: int):
        run = get_object_or_404(self.get_queryset(request), pk=pk)
        response = StreamingHttpResponse(
            selectors.run_discrepancies_csv(run=run), content_type="text/csv"
        )
        response["Content-Disposition"] = f'attachment; filename="{run.public_id}.csv"'
        return response

    @admin.action(description="Export the selected run's discrepancies (CSV)")
    def export_csv(self, request, queryset):
        run = queryset.first()
        return HttpResponseRedirect(reverse("admin:reconciliation_run_export", args=[run.pk]))

    def get_actions(self, request):
        return admin.ModelAdmin.get_actions(self, request)


@admin.register(SettlementReport)
class SettlementReportAdmin(_ReadOnly, MerchantScopedAdmin):
    merchant_path = "connector__merchant_id"
    list_display = (
        "name",
        "connector",
        "source",
        "status",
        "line_count",
        "short_hash",
        "error_line",
        "error_column",
        "received_at",
    )
    list_filter = ("status", "source", "connector")
    list_select_related = ("connector",)
    readonly_fields = (
        "name",
        "connector",
        "source",
        "status",
        "sha256",
        "size",
        "path",
        "line_count",
        "error",
        "error_line",
        "error_column",
        "run",
        "received_at",
        "loaded_at",
    )
    fields = readonly_fields

    @admin.display(description="sha256")
    def short_hash(self, report):
        return report.sha256[:12]


class AmountFilter(admin.SimpleListFilter):
    title = "difference"
    parameter_name = "difference"
    RANGES = {
        "small": (0, 100),
        "medium": (101, 10_000),
        "large": (10_001, None),
    }

    def lookups(self, request, model_admin):
        return [("small", "up to 1.00"), ("medium", "1.01 to 100.00"), ("large", "over 100.00")]

    def queryset(self, request, queryset):
        bounds = self.RANGES.get(self.value() or "")
        if bounds is None:
            return queryset
        low, high = bounds
        condition = Q(difference__gte=low) | Q(difference__lte=-low)
        if high is not None:
            condition &= Q(difference__lte=high, difference__gte=-high)
        return queryset.filter(condition)


class LinkForm(forms.Form):
    public_id = forms.CharField(label="payment (pi_…) or refund (re_…)", max_length=40)
    note = forms.CharField(required=False, max_length=500)


@admin.register(Discrepancy)
class DiscrepancyAdmin(MerchantScopedAdmin):
    list_display = (
        "created_at",
        "public_id",
        "kind",
        "status",
        "connector",
        "merchant_id",
        "reference",
        "expected_public_id",
        "currency",
        "our_amount",
        "psp_amount",
        "difference",
        "tolerance",
        "match_key",
    )
    list_filter = ("status", "kind", "connector", AmountFilter, "merchant_id")
    search_fields = ("public_id", "reference", "expected_public_id", "payout_id")
    ordering = ("created_at", "id")  # the queue: oldest first
    list_select_related = ("connector",)
    readonly_fields = (
        "public_id",
        "kind",
        "status",
        "connector",
        "merchant_id",
        "side_by_side",
        "tolerance",
        "match_key",
        "resolution",
        "resolution_note",
        "resolved_by",
        "resolved_at",
        "journal",
        "run",
        "created_at",
        "link_action",
    )
    fields = readonly_fields
    actions = ["accept_psp", "write_off", "expected_later", "reopen"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # changed only by the resolution actions

    @admin.display(description="the two sides")
    def side_by_side(self, d: Discrepancy):
        sides = selectors.discrepancy_sides(d)
        ours, line = sides["ours"], sides["line"]
        rows = [
            ("reference", d.expected_public_id or "-", d.reference or d.payout_id or "-"),
            ("amount", d.our_amount, d.psp_amount),
            ("fee", d.our_fee, d.psp_fee),
            (
                "currency",
                ours["currency"] if ours else d.currency,
                line.currency if line else d.currency,
            ),
            ("status / type", ours["status"] if ours else "-", line.record_type if line else "-"),
            (
                "date",
                ours["created_at"].date() if ours else "-",
                line.settled_on if line else d.occurred_on,
            ),
            ("report line", "", f"{line.report.name}:{line.line_number}" if line else "-"),
        ]
        body = format_html_join(
            "", "<tr><th>{}</th><td>{}</td><td>{}</td></tr>", ((n, a, b) for n, a, b in rows)
        )
        return format_html(
            "<table><tr><th></th><th>ours</th><th>PSP</th></tr>{}</table>"
            "<p>difference {} (tolerance {} minor units)</p>",
            body,
            d.difference,
            d.tolerance,
        )

    @admin.display(description="link by hand")
    def link_action(self, d: Discrepancy):
        if d.status == Discrepancy.Status.RESOLVED or not d.line_id:
            return "-"
        url = reverse("admin:reconciliation_discrepancy_link", args=[d.pk])
        return format_html('<a href="{}">link to a payment or refund</a>', url)

    def _apply(self, request, queryset, service, label: str, permission: str):
        if not request.user.has_perm(permission):
            raise PermissionDenied
        done = 0
        for d in queryset:
            try:
                service(discrepancy=d, actor=Actor.staff(request.user), user=request.user)
                done += 1
            except PlatformError as exc:
                self.message_user(request, f"{d.public_id}: {exc}", messages.ERROR)
        if done:
            self.message_user(request, f"{label}: {done} discrepancy(ies)")

    @admin.action(description="Accept the PSP's figure (adjusting journal)")
    def accept_psp(self, request, queryset):
        self._apply(
            request,
            queryset,
            services.discrepancy_accept_psp,
            "accepted",
            services.PERMISSIONS["accept_psp"],
        )

    @admin.action(description="Write off")
    def write_off(self, request, queryset):
        self._apply(
            request,
            queryset,
            services.discrepancy_write_off,
            "written off",
            services.PERMISSIONS["write_off"],
        )

    @admin.action(description="Mark as expected later")
    def expected_later(self, request, queryset):
        self._apply(
            request,
            queryset,
            services.discrepancy_expect_later,
            "expected later",
            services.PERMISSIONS["expected_later"],
        )

    @admin.action(description="Reopen")
    def reopen(self, request, queryset):
        self._apply(
            request,
            queryset,
            services.discrepancy_reopen,
            "reopened",
            services.PERMISSIONS["reopen"],
        )

    def get_urls(self):
        return [
            path(
                "<int:pk>/link/",
                self.admin_site.admin_view(self.link_view),
                name="reconciliation_discrepancy_link",
            ),
            *super().get_urls(),
        ]

    def link_view(self, request, pk: int):
        d = get_object_or_404(self.get_queryset(request), pk=pk)
        if not request.user.has_perm(services.PERMISSIONS["link"]):
            raise PermissionDenied
        form = LinkForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                services.discrepancy_link(
                    discrepancy=d,
                    public_id=form.cleaned_data["public_id"],
                    note=form.cleaned_data["note"],
                    actor=Actor.staff(request.user),
                    user=request.user,
                )
            except PlatformError as exc:
                form.add_error("public_id", str(exc))
            else:
                self.message_user(request, f"{d.public_id} linked")
                return HttpResponseRedirect(
                    reverse("admin:reconciliation_discrepancy_change", args=[d.pk])
                )
        return TemplateResponse(
            request,
            "admin/reconciliation/link.html",
            {
                **self.admin_site.each_context(request),
                "form": form,
                "discrepancy": d,
                "title": f"Link {d.public_id} to a payment or refund",
            },
        )
