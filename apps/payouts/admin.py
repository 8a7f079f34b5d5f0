"""Finance back-office for payouts: read-only rows, with retry (failed) and cancel (pending)
actions behind `core.retry_payout` that call the same services as the API. Staff see only the
merchants they serve."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join

from apps.core.admin_scoping import MerchantScopedAdmin
from apps.core.audit import Actor
from apps.core.errors import PlatformError
from apps.events import selectors as events_selectors
from apps.payouts import selectors, services
from apps.payouts.models import Payout, PayoutStatus

COUNT_CAP = 10_000
STUCK_AFTER = timedelta(hours=1)


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP rows: the payouts table grows without bound."""

    @cached_property
    def count(self) -> int:
        return self.object_list.values("pk")[: COUNT_CAP + 1].count()


class NeedsAttentionFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [
            ("failed", "Failed"),
            ("stuck", "Pending for over an hour"),
            ("unknown", "Provider outcome unknown"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "failed":
            return queryset.filter(status=PayoutStatus.FAILED)
        if self.value() == "stuck":
            return queryset.filter(
                status=PayoutStatus.PENDING, created_at__lte=timezone.now() - STUCK_AFTER
            )
        if self.value() == "unknown":
            return queryset.filter(Q(status=PayoutStatus.PENDING) & Q(awaiting_provider=True))
        return queryset


@admin.register(Payout)
class PayoutAdmin(MerchantScopedAdmin):
    list_display = (
        "public_id",
        "merchant",
        "seller",
        "amount_display",
        "status",
        "automatic",
        "attempt",
        "awaiting_provider",
        "failure_code",
        "created_at",
    )
    list_filter = ("status", NeedsAttentionFilter, "automatic", "livemode", "currency")
    list_select_related = ("merchant", "seller")
    search_fields = (
        "=public_id",
        "=provider_reference",
        "=ledger_transaction",
        "=seller__public_id",
        "=merchant__public_id",
    )
    readonly_fields = [f.name for f in Payout._meta.fields] + ["ledger_journals", "timeline"]
    actions = ["retry_selected", "cancel_selected"]
    paginator = CappedCountPaginator
    list_per_page = 50

    def has_add_permission(self, request):
        return False  # payouts are created by the API and the schedule, through the services

    def has_change_permission(self, request, obj=None):
        return False  # money moves only through the actions

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: Payout) -> str:
        return f"{obj.amount} {obj.currency.upper()}"

    @admin.display(description="ledger journals (drill-down)")
    def ledger_journals(self, obj: Payout):
        journals = selectors.payout_journals(payout=obj)
        items = format_html_join(
            "",
            "<li><a href='{}'>{}</a> {} ({})</li>",
            (
                (
                    reverse("admin:ledger_journaltransaction_change", args=[j.pk]),
                    j.public_id,
                    j.kind,
                    f"{j.created_at:%Y-%m-%d %H:%M:%S}",
                )
                for j in journals
            ),
        )
        search = reverse("admin:ledger_journaltransaction_changelist") + f"?q={obj.public_id}"
        return format_html("<ul>{}</ul><a href='{}'>all journals of this payout</a>", items, search)

    @admin.display(description="outbox events (timeline)")
    def timeline(self, obj: Payout):
        rows = events_selectors.outbox_for_object(object_id=obj.public_id)
        return format_html(
            "<ol>{}</ol>",
            format_html_join(
                "",
                "<li>{} #{} {}</li>",
                ((f"{e.created_at:%Y-%m-%d %H:%M:%S}", e.sequence, e.event_type) for e in rows),
            ),
        )

    # money-moving actions: their own permission, and always through the services
    def has_retry_payout_permission(self, request) -> bool:
        return request.user.has_perm("core.retry_payout")

    @admin.action(description="Retry selected failed payouts", permissions=["retry_payout"])
    def retry_selected(self, request, queryset):
        self._run(request, queryset, services.payout_retry, "sent again")

    @admin.action(description="Cancel selected pending payouts", permissions=["retry_payout"])
    def cancel_selected(self, request, queryset):
        self._run(request, queryset, services.payout_cancel, "canceled")

    def _run(self, request, queryset, operation, verb: str) -> None:
        actor = Actor.staff(request.user)
        for payout in queryset:
            try:
                operation(payout=payout, actor=actor)
                messages.success(request, f"{payout.public_id} {verb}.")
            except PlatformError as exc:
                messages.error(request, f"{payout.public_id}: {exc.message}")
