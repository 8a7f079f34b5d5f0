"""Support and ops: find a payment by any id, see its whole timeline, act through services."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from apps.core.admin_csv import export_csv
from apps.core.admin_scoping import MerchantScopedAdmin
from apps.core.audit import Actor
from apps.core.errors import PlatformError
from apps.core.money import format_amount, minor_to_decimal
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
        "routing",
    )
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="routing decision")
    def routing(self, obj):
        # names for the connectors a decision skipped (the trace keeps their ids): those the
        # intent's attempts used
        names = {
            public_id: name
            for public_id, name in obj.intent.attempts.values_list(
                "connector__public_id", "connector__name"
            )
        }
        return routing_trace_table(obj.routing_trace, names=names)


def routing_trace_table(trace: dict | None, *, names: dict[str, str] | None = None):
    """The routing trace as support reads it (issue 17): the profile, rule and strategy on one
    line, then each candidate ranked with its score and why, then each connector skipped and
    why; instead of a JSON blob a page wide."""
    if not trace:
        return "—"
    profile = (
        f"{trace.get('profile_name') or trace.get('profile')} v{trace.get('profile_version')}"
        if trace.get("profile")
        else "no profile (connector priority)"
    )
    rule = trace.get("rule") or {}
    head = format_html(
        "<p>{} · rule {} · strategy <b>{}</b> · attempt {} of this confirm · {} µs</p>",
        profile,
        f"{rule.get('index')} ({rule.get('name')})" if rule else "none",
        trace.get("strategy") or "—",
        trace.get("confirm_attempt") or 1,
        trace.get("decided_in_us") or "—",
    )
    candidates = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                c.get("rank"),
                c.get("name") or c.get("connector"),
                c.get("score", "—"),
                (c.get("basis") or "").replace("_", " "),
                c.get("source") or "",
            )
            for c in trace.get("candidates") or []
        ),
    )
    skipped = format_html_join(
        "",
        "<tr><td>–</td><td>{}</td><td colspan=3>skipped: {}</td></tr>",
        (
            ((names or {}).get(cid, cid), str(why).replace("_", " "))
            for cid, why in (trace.get("skipped") or {}).items()
        ),
    )
    return format_html(
        '{}<table class="routing-trace"><thead><tr><th>rank</th><th>connector</th>'
        "<th>score</th><th>basis</th><th>source</th></tr></thead><tbody>{}{}</tbody></table>",
        head,
        candidates,
        skipped,
    )


class RefundInline(admin.TabularInline):
    model = Refund
    extra = 0
    can_delete = False
    fields = (
        "public_id",
        "amount_display",
        "status",
        "reason",
        "failure_reason",
        "psp_reference",
        "created_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="amount")
    def amount_display(self, obj):
        return format_amount(obj.amount, obj.currency)


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


_MINOR_UNIT_FIELDS = frozenset(
    {"amount", "amount_capturable", "amount_received", "amount_refunded", "platform_fee_amount"}
)


@admin.register(PaymentIntent)
class PaymentIntentAdmin(MerchantScopedAdmin):
    # the columns support and finance read first, within 1,440 px
    list_display = (
        "public_id",
        "amount_display",
        "status",
        "customer_email",
        "card_last4",
        "connector_name",
        "created",
    )
    csv_columns = (
        "public_id",
        "merchant",
        "amount_major",
        "currency",
        "amount_received_major",
        "amount_refunded_major",
        "status",
        "capture_method",
        "order_id",
        "customer_email",
        "card_last4",
        "connector_name",
        "psp_reference",
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
    # the amounts once, as people read them ("amounts"), instead of five minor-unit fields
    readonly_fields = [
        "amounts",
        "related",
        *(f.name for f in PaymentIntent._meta.fields if f.name not in _MINOR_UNIT_FIELDS),
        "timeline",
        "radar",
    ]
    inlines = [PaymentAttemptInline, RefundInline]

    def get_search_results(self, request, queryset, search_term):
        """The fields above, each looked up by index (selectors.intent_search)."""
        if not search_term.strip():
            return queryset, False
        return selectors.intent_search(queryset, search_term), False

    actions = ["capture_selected", "cancel_selected", export_csv]
    change_form_template = "admin/intents/paymentintent/change_form.html"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj):
        return format_amount(obj.amount, obj.currency)

    @admin.display(description="amount")
    def amount_major(self, obj):
        return minor_to_decimal(obj.amount, obj.currency)

    @admin.display(description="received")
    def amount_received_major(self, obj):
        return minor_to_decimal(obj.amount_received, obj.currency)

    @admin.display(description="refunded")
    def amount_refunded_major(self, obj):
        return minor_to_decimal(obj.amount_refunded, obj.currency)

    @admin.display(description="amounts")
    def amounts(self, obj):
        return format_html(
            "{} · received {} · refunded {} · capturable {} · platform fee {}",
            format_amount(obj.amount, obj.currency),
            format_amount(obj.amount_received, obj.currency),
            format_amount(obj.amount_refunded, obj.currency),
            format_amount(obj.amount_capturable, obj.currency),
            format_amount(obj.platform_fee_amount, obj.currency),
        )

    @admin.display(description="card")
    def card_last4(self, obj):
        if not obj.payment_method_id:
            return ""
        return format_html(
            '<span style="white-space:nowrap">{} •••• {}</span>',
            obj.payment_method.brand,
            obj.payment_method.last4,
        )

    @admin.display(description="created", ordering="created_at")
    def created(self, obj):
        # short, so the key columns fit at 1,440 px next to the admin's navigation
        return format_html(
            '<span style="white-space:nowrap" title="{}">{}</span>',
            obj.created_at.isoformat(),
            timezone.localtime(obj.created_at).strftime("%b %d, %H:%M"),
        )

    @admin.display(description="connector")
    def connector_name(self, obj):
        return obj.connector.name if obj.connector_id else ""

    @admin.display(description="related records")
    def related(self, obj):
        """Links from the payment to what it caused elsewhere (by its public id, the key the
        other apps record): ledger journals, PSP notifications, outbox events, webhook
        deliveries; disputes and reconciliation lines when those apps are installed."""
        from django.apps import apps as django_apps

        links = [
            ("ledger journals", "admin:ledger_journaltransaction_changelist"),
            ("PSP webhooks", "admin:events_inboundwebhook_changelist"),
            ("outbox events", "admin:events_outboxevent_changelist"),
            ("merchant events", "admin:events_event_changelist"),
            ("webhook deliveries", "admin:events_webhookdelivery_changelist"),
        ]
        for app_label, model, label in (
            ("disputes", "dispute", "disputes"),
            ("reconciliation", "settlementrecord", "reconciliation lines"),
        ):
            if django_apps.is_installed(f"apps.{app_label}"):
                links.append((label, f"admin:{app_label}_{model}_changelist"))
        items = []
        for label, name in links:
            try:
                url = reverse(name)
            except NoReverseMatch:  # an app without that admin page
                continue
            items.append((url, obj.public_id, label))
        return format_html_join(" · ", '<a href="{}?q={}">{}</a>', items)

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
    list_display = ("public_id", "intent", "amount_display", "status", "reason", "created_at")
    csv_columns = (
        "public_id",
        "intent",
        "amount_major",
        "currency",
        "status",
        "reason",
        "created_at",
    )
    actions = [export_csv]
    list_filter = ("status",)
    list_select_related = ("intent",)
    search_fields = ("=public_id", "=intent__public_id", "=psp_reference")
    readonly_fields = [f.name for f in Refund._meta.fields]

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj):
        return format_amount(obj.amount, obj.currency)

    @admin.display(description="amount")
    def amount_major(self, obj):
        return minor_to_decimal(obj.amount, obj.currency)

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
        "amount_display",
        "outcome",
        "decline_code",
        "latency_ms",
        "started_at",
    )
    actions = [export_csv]
    list_filter = ("outcome",)
    list_select_related = ("intent", "connector")
    search_fields = ("=public_id", "=psp_reference", "=intent__public_id")
    readonly_fields = [f.name for f in PaymentAttempt._meta.fields if f.name != "routing_trace"] + [
        "routing"
    ]

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj):
        return format_amount(obj.amount, obj.currency)

    @admin.display(description="routing decision")
    def routing(self, obj):
        return routing_trace_table(obj.routing_trace)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
