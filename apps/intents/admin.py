"""Support and ops: find a payment by any id, see its whole timeline, act through services."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from apps.core.admin_scoping import MerchantScopedAdmin
from apps.core.audit import Actor
from apps.core.errors import PlatformError
from apps.events import selectors as events_selectors
from apps.intents import selectors, services
from apps.intents.models import PaymentAttempt, PaymentIntent, Refund


class PaymentAttemptInline(admin.TabularInline):
    model = PaymentAttempt
    extra = 0
    can_delete = False
    fields = (
        "sequence",
        "public_id",
        "connector",
        "outcome",
        "decline_code",
        "raw_code",
        "raw_message",
        "psp_reference",
        "latency_ms",
        "inquiry_count",
        "started_at",
        "completed_at",
        "routing_trace",
    )
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class RefundInline(admin.TabularInline):
    model = Refund
    extra = 0
    can_delete = False
    fields = (
        "public_id",
        "amount",
        "currency",
        "status",
        "reason",
        "failure_reason",
        "psp_reference",
        "created_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class RefundActionForm(forms.Form):
    amount = forms.IntegerField(
        min_value=1, required=False, help_text="Minor units; empty refunds what is left."
    )
    reason = forms.ChoiceField(
        choices=[("", "—")] + [(r, r) for r in sorted(services.REFUND_REASONS)], required=False
    )


class NeedsReviewFilter(admin.SimpleListFilter):
    title = "needs ops review"
    parameter_name = "needs_review"

    def lookups(self, request, model_admin):
        return [("yes", "Unknown PSP outcome, inquiries exhausted")]

    def queryset(self, request, queryset):
        return queryset.filter(needs_review=True) if self.value() == "yes" else queryset


@admin.register(PaymentIntent)
class PaymentIntentAdmin(MerchantScopedAdmin):
    list_display = (
        "public_id",
        "merchant",
        "amount_display",
        "status",
        "capture_method",
        "order_id",
        "customer_email",
        "card_last4",
        "connector",
        "created_at",
    )
    list_filter = ("status", NeedsReviewFilter, "livemode", "capture_method")
    list_select_related = ("merchant", "payment_method", "connector")
    search_fields = (
        "=public_id",
        "=order_id",
        "=customer_email",
        "=payment_method__last4",
        "=psp_reference",
        "=attempts__psp_reference",
        "=attempts__public_id",
        "=refunds__public_id",
    )
    readonly_fields = [f.name for f in PaymentIntent._meta.fields] + ["timeline", "radar"]
    inlines = [PaymentAttemptInline, RefundInline]

    def get_search_results(self, request, queryset, search_term):
        """The fields above, each looked up by index (selectors.intent_search)."""
        if not search_term.strip():
            return queryset, False
        return selectors.intent_search(queryset, search_term), False

    actions = ["capture_selected", "cancel_selected"]
    change_form_template = "admin/intents/paymentintent/change_form.html"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="amount")
    def amount_display(self, obj):
        return f"{obj.amount} {obj.currency.upper()}"

    @admin.display(description="last4")
    def card_last4(self, obj):
        return obj.payment_method.last4 if obj.payment_method_id else ""

    @admin.display(description="Radar (score and its contributions)")
    def radar(self, obj):
        outcome = obj.risk_outcome or {}
        if not outcome:
            return "-"
        rule = outcome.get("rule") or {}
        return format_html(
            "<p>{} · score {} ({}) · rule {}</p><ul>{}</ul>",
            outcome.get("type"),
            outcome.get("risk_score"),
            outcome.get("risk_level"),
            f"{rule.get('id')}: {rule.get('action')} if {rule.get('predicate')}" if rule else "-",
            format_html_join(
                "",
                "<li>{}: +{}</li>",
                sorted((outcome.get("score_contributions") or {}).items()),
            ),
        )

    @admin.display(description="outbox events (timeline)")
    def timeline(self, obj):
        rows = events_selectors.outbox_for_object(object_id=obj.public_id)
        return format_html(
            "<ol>{}</ol>",
            format_html_join(
                "",
                "<li>{} #{} {}</li>",
                ((f"{e.created_at:%Y-%m-%d %H:%M:%S}", e.sequence, e.event_type) for e in rows),
            ),
        )

    # money-moving actions: own permissions, and always through the services
    def has_capture_permission(self, request):
        return request.user.has_perm("core.capture_payment")

    def has_cancel_permission(self, request):
        return request.user.has_perm("core.cancel_payment")

    @admin.action(description="Capture selected (full amount)", permissions=["capture"])
    def capture_selected(self, request, queryset):
        self._run(
            request, queryset, lambda i, a: services.intent_capture(intent=i, actor=a), "captured"
        )

    @admin.action(description="Cancel selected", permissions=["cancel"])
    def cancel_selected(self, request, queryset):
        self._run(
            request,
            queryset,
            lambda i, a: services.intent_cancel(
                intent=i, actor=a, cancellation_reason="requested_by_customer"
            ),
            "canceled",
        )

    def _run(self, request, queryset, operation, verb):
        actor = Actor.staff(request.user)
        for intent in queryset:
            try:
                operation(intent, actor)
                messages.success(request, f"{intent.public_id} {verb}.")
            except PlatformError as exc:
                messages.error(request, f"{intent.public_id}: {exc.message}")

    def get_urls(self):
        refund = path(
            "<int:pk>/refund/",
            self.admin_site.admin_view(self.refund_view),
            name="intents_paymentintent_refund",
        )
        return [refund, *super().get_urls()]

    def refund_view(self, request, pk: int):
        if not request.user.has_perm("core.refund_payment"):
            raise PermissionDenied
        intent = self.get_queryset(request).filter(pk=pk).first()  # scoped: 404 for others
        if intent is None:
            raise PermissionDenied
        form = RefundActionForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                refund = services.refund_create(
                    merchant=intent.merchant,
                    livemode=intent.livemode,
                    payment_intent=intent.public_id,
                    actor=Actor.staff(request.user),
                    amount=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"],
                )
                messages.success(request, f"Refund {refund.public_id}: {refund.status}.")
                return redirect(reverse("admin:intents_paymentintent_change", args=[pk]))
            except PlatformError as exc:
                # shown on the form, next to the field it is about when it names one
                form.add_error(exc.param if exc.param in form.fields else None, exc.message)
        return render(
            request,
            "admin/intents/refund_form.html",
            {
                **self.admin_site.each_context(request),
                "intent": intent,
                "form": form,
                "title": f"Refund {intent.public_id}",
                "opts": self.model._meta,
            },
        )


@admin.register(Refund)
class RefundAdmin(MerchantScopedAdmin):
    list_display = ("public_id", "intent", "amount", "currency", "status", "reason", "created_at")
    list_filter = ("status",)
    list_select_related = ("intent",)
    search_fields = ("=public_id", "=intent__public_id", "=psp_reference")
    readonly_fields = [f.name for f in Refund._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(PaymentAttempt)
class PaymentAttemptAdmin(MerchantScopedAdmin):
    merchant_path = "intent__merchant_id"
    list_display = (
        "public_id",
        "intent",
        "sequence",
        "connector",
        "outcome",
        "decline_code",
        "latency_ms",
        "started_at",
    )
    list_filter = ("outcome",)
    list_select_related = ("intent", "connector")
    search_fields = ("=public_id", "=psp_reference", "=intent__public_id")
    readonly_fields = [f.name for f in PaymentAttempt._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
