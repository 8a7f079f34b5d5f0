"""Finance/ops back-office for disputes: the queue (soonest deadline first), the dispute page
with its timeline (every notification raw and normalized, our evidence and acceptance, the
journals), the parked notifications about payments we do not know, and the dispute rates.
Actions (upload and stage evidence, submit, accept, resolve a parked notification) each have
their own permission and call the same services as the API. Staff see only the merchants they
serve; support sees the disputes on the payment intent's page."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.apps import apps as django_apps
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from apps.core.admin_scoping import MerchantScopedAdmin, merchant_ids_for_staff
from apps.core.audit import Actor
from apps.core.errors import PlatformError
from apps.disputes import selectors, services
from apps.disputes.models import (
    CLOSED_STATUSES,
    NEEDS_RESPONSE_STATUSES,
    Dispute,
    DisputeNotification,
)
from apps.disputes.representations import EVIDENCE_FILE_FIELDS, EVIDENCE_TEXT_FIELDS


class DueFilter(admin.SimpleListFilter):
    title = "evidence due"
    parameter_name = "due"

    def lookups(self, request, model_admin):
        return [("24h", "Within 24 hours"), ("72h", "Within 72 hours"), ("overdue", "Overdue")]

    def queryset(self, request, queryset):
        now = timezone.now()
        open_ = queryset.filter(status__in=NEEDS_RESPONSE_STATUSES)
        if self.value() == "24h":
            return open_.filter(evidence_due_by__range=(now, now + timedelta(hours=24)))
        if self.value() == "72h":
            return open_.filter(evidence_due_by__range=(now, now + timedelta(hours=72)))
        if self.value() == "overdue":
            return open_.filter(evidence_due_by__lt=now)
        return queryset


class OpenFilter(admin.SimpleListFilter):
    title = "open or closed"
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("open", "Open"), ("closed", "Closed")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.exclude(status__in=CLOSED_STATUSES)
        if self.value() == "closed":
            return queryset.filter(status__in=CLOSED_STATUSES)
        return queryset


class EvidenceForm(forms.Form):
    document = forms.FileField(required=False, help_text="PDF, JPEG or PNG")
    document_field = forms.ChoiceField(
        choices=[(name, name) for name in EVIDENCE_FILE_FIELDS], initial="uncategorized_file"
    )
    product_description = forms.CharField(required=False, widget=forms.Textarea)
    customer_email_address = forms.CharField(required=False)
    shipping_tracking_number = forms.CharField(required=False)
    refund_policy_disclosure = forms.CharField(required=False, widget=forms.Textarea)
    uncategorized_text = forms.CharField(required=False, widget=forms.Textarea)


@admin.register(Dispute)
class DisputeAdmin(MerchantScopedAdmin):
    list_display = (
        "public_id",
        "merchant",
        "connector",
        "amount_display",
        "stage",
        "status",
        "reason",
        "evidence_due_by",
        "needs_attention",
        "created_at",
    )
    list_filter = (
        OpenFilter,
        "status",
        "stage",
        DueFilter,
        "needs_attention",
        "reason",
        "connector",
        "merchant",
        "livemode",
    )
    list_select_related = ("merchant", "connector", "intent")
    search_fields = ("=public_id", "=psp_dispute_id", "=psp_reference", "=intent__public_id")
    readonly_fields = [f.name for f in Dispute._meta.fields] + ["timeline", "merchant_rate"]
    actions = ["submit_selected", "accept_selected"]
    list_per_page = 50

    def get_queryset(self, request):
        # the queue: the soonest deadline first, undated ones last
        return (
            super().get_queryset(request).order_by(F("evidence_due_by").asc(nulls_last=True), "-id")
        )

    def has_add_permission(self, request):
        return False  # disputes come from the PSPs

    def has_change_permission(self, request, obj=None):
        return False  # they change only through the actions

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: Dispute) -> str:
        return f"{obj.amount} {obj.currency.upper()}"

    @admin.display(description="timeline")
    def timeline(self, obj: Dispute):
        items = selectors.dispute_timeline(dispute=obj)
        evidence = reverse("admin:disputes_dispute_evidence", args=[obj.pk])
        return format_html(
            "<p><a href='{}'>upload / stage / submit evidence</a></p><ol>{}</ol>",
            evidence,
            format_html_join(
                "",
                "<li>{} <b>{}</b> {}<br><small>{}</small></li>",
                (
                    (f"{i['at']:%Y-%m-%d %H:%M:%S}", i["kind"], i["title"], i["details"])
                    for i in items
                ),
            ),
        )

    @admin.display(description="merchant's dispute rate (30 days)")
    def merchant_rate(self, obj: Dispute) -> str:
        rate = selectors.dispute_rate_for_merchant(merchant_id=obj.merchant_id)
        return (
            f"{rate.disputes} of {rate.captured} payments ({rate.count_rate:.2%}), "
            f"{rate.disputed_amount} of {rate.captured_amount} ({rate.amount_rate:.2%})"
        )

    # actions: each its own permission, always through the services
    def has_submit_dispute_evidence_permission(self, request) -> bool:
        return request.user.has_perm("disputes.submit_dispute_evidence")

    def has_accept_dispute_permission(self, request) -> bool:
        return request.user.has_perm("disputes.accept_dispute")

    @admin.action(
        description="Submit the staged evidence to the PSP", permissions=["submit_dispute_evidence"]
    )
    def submit_selected(self, request, queryset):
        self._run(
            request,
            queryset,
            lambda d, actor: services.dispute_update(dispute=d, actor=actor, submit=True),
            "submitted",
        )

    @admin.action(description="Accept (concede) selected disputes", permissions=["accept_dispute"])
    def accept_selected(self, request, queryset):
        self._run(
            request,
            queryset,
            lambda d, actor: services.dispute_close(dispute=d, actor=actor),
            "accepted",
        )

    def _run(self, request, queryset, operation, verb: str) -> None:
        actor = Actor.staff(request.user)
        for dispute in queryset:
            try:
                operation(dispute, actor)
                messages.success(request, f"{dispute.public_id} {verb}.")
            except PlatformError as exc:
                messages.error(request, f"{dispute.public_id}: {exc.message}")

    def get_urls(self):
        return [
            path(
                "<int:pk>/evidence/",
                self.admin_site.admin_view(self.evidence_view),
                name="disputes_dispute_evidence",
            ),
            path(
                "rates/",
                self.admin_site.admin_view(self.rates_view),
                name="disputes_dispute_rates",
            ),
            *super().get_urls(),
        ]

    def evidence_view(self, request, pk: int):
        if not request.user.has_perm("disputes.upload_dispute_evidence"):
            raise PermissionDenied
        dispute = self.get_queryset(request).filter(pk=pk).first()  # scoped: others refused
        if dispute is None:
            raise PermissionDenied
        can_submit = request.user.has_perm("disputes.submit_dispute_evidence")
        form = EvidenceForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            actor = Actor.staff(request.user)
            data = form.cleaned_data
            evidence = {name: data[name] for name in EVIDENCE_TEXT_FIELDS if data.get(name)}
            try:
                if data.get("document"):
                    upload = data["document"]
                    file = services.evidence_file_create(
                        merchant=dispute.merchant,
                        livemode=dispute.livemode,
                        purpose="dispute_evidence",
                        filename=upload.name,
                        content=upload.read(services.FILE_MAX_BYTES + 1),
                        actor=actor,
                    )
                    evidence[data["document_field"]] = file.public_id
                submit = "submit" in request.POST and can_submit
                services.dispute_update(
                    dispute=dispute, actor=actor, evidence=evidence, submit=submit
                )
                messages.success(
                    request, f"{dispute.public_id}: evidence {'submitted' if submit else 'staged'}."
                )
                return redirect(reverse("admin:disputes_dispute_change", args=[pk]))
            except PlatformError as exc:
                form.add_error(None, exc.message)
        return render(
            request,
            "admin/disputes/evidence_form.html",
            {
                **self.admin_site.each_context(request),
                "dispute": dispute,
                "form": form,
                "can_submit": can_submit,
                "title": f"Evidence for {dispute.public_id}",
                "opts": self.model._meta,
            },
        )

    def rates_view(self, request):
        merchant_ids = merchant_ids_for_staff(request.user)
        rates = [
            r
            for r in selectors.dispute_rates(days=30)
            if merchant_ids is None or r.merchant_id in merchant_ids
        ]
        merchants = {
            m.pk: str(m)
            for m in django_apps.get_model("merchants", "Merchant").objects.filter(
                pk__in={r.merchant_id for r in rates}
            )
        }
        connectors = {
            c.pk: str(c)
            for c in django_apps.get_model("connectors", "Connector").objects.filter(
                pk__in={r.connector_id for r in rates if r.connector_id}
            )
        }
        rows = [
            {
                "merchant": merchants.get(r.merchant_id, r.merchant_id),
                "connector": connectors.get(r.connector_id, "-"),
                "rate": r,
                "count_pct": f"{r.count_rate:.2%}",
                "amount_pct": f"{r.amount_rate:.2%}",
            }
            for r in rates
        ]
        return render(
            request,
            "admin/disputes/rates.html",
            {
                **self.admin_site.each_context(request),
                "rows": rows,
                "days": 30,
                "title": "Dispute rates",
                "opts": self.model._meta,
            },
        )


@admin.register(DisputeNotification)
class DisputeNotificationAdmin(MerchantScopedAdmin):
    """Every dispute notification; filter result=parked for the ops queue of notifications
    about payments we do not know."""

    list_display = (
        "received_at",
        "raw_event",
        "raw_status",
        "result",
        "psp_dispute_id",
        "psp_reference",
        "merchant",
        "connector",
        "dispute",
    )
    list_filter = ("result", "raw_event", "connector", "merchant")
    list_select_related = ("merchant", "connector", "dispute")
    search_fields = ("=psp_dispute_id", "=psp_reference", "=psp_event_id", "=dispute__public_id")
    readonly_fields = [f.name for f in DisputeNotification._meta.fields]
    actions = ["resolve_selected"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_resolve_dispute_notification_permission(self, request) -> bool:
        return request.user.has_perm("disputes.resolve_dispute_notification")

    @admin.action(
        description="Mark parked notifications resolved",
        permissions=["resolve_dispute_notification"],
    )
    def resolve_selected(self, request, queryset):
        actor = Actor.staff(request.user)
        for notification in queryset:
            try:
                services.dispute_notification_resolve(notification=notification, actor=actor)
                messages.success(request, f"{notification} resolved.")
            except PlatformError as exc:
                messages.error(request, f"{notification}: {exc.message}")


class DisputeInline(admin.TabularInline):
    """Support sees a payment's disputes on its page."""

    model = Dispute
    fk_name = "intent"
    fields = ("public_id", "stage", "status", "amount", "reason", "evidence_due_by", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def _show_disputes_on_the_intent_page() -> None:
    """The intents admin does not know this app; the inline is added to it from here."""
    intent_admin = admin.site._registry.get(django_apps.get_model("intents", "PaymentIntent"))
    if intent_admin is not None and DisputeInline not in intent_admin.inlines:
        intent_admin.inlines = [*intent_admin.inlines, DisputeInline]


_show_disputes_on_the_intent_page()
