"""Finance back-office for the ledger: strictly read-only (the journal is append-only; money
moves only through the services). Staff see only the merchants they serve."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, Q, Sum
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from apps.core.admin_csv import export_csv
from apps.core.admin_scoping import MerchantScopedAdmin, merchant_ids_for_staff, staff_sees_all
from apps.core.money import format_amount
from apps.ledger import selectors
from apps.ledger.models import (
    DriftCheckRun,
    DriftFinding,
    JournalTransaction,
    LedgerAccount,
    LedgerEntry,
)

COUNT_CAP = 10_000


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP rows: the journal tables grow without bound."""

    @cached_property
    def count(self) -> int:
        return self.object_list.values("pk")[: COUNT_CAP + 1].count()


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        return {}  # no bulk delete


class ReadOnlyLedgerAdmin(ReadOnlyMixin, MerchantScopedAdmin):
    paginator = CappedCountPaginator
    list_per_page = 50

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields] + list(self.readonly_fields)


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnlyLedgerAdmin):
    list_display = (
        "code",
        "merchant_id",
        "livemode",
        "currency",
        "kind",
        "posted_balance",
        "available",
        "pending_debits",
        "pending_credits",
        "version",
        "updated_at",
    )
    list_filter = ("livemode", "currency", "kind", "allow_negative")
    search_fields = ("code", "=merchant_id")
    readonly_fields = ("available", "recent_entries")
    change_list_template = "admin/ledger/ledgeraccount/change_list.html"

    @admin.display(description="available")
    def available(self, obj: LedgerAccount) -> int:
        return obj.available_balance

    @admin.display(description="last 50 entries")
    def recent_entries(self, obj: LedgerAccount):
        entries = selectors.entries_for_account(account=obj).order_by("-account_version")[:50]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td><a href='{}'>{}</a></td><td>{}</td><td>{}</td>"
            "<td>{}</td><td>{}</td></tr>",
            (
                (
                    e.account_version,
                    reverse("admin:ledger_journaltransaction_change", args=[e.transaction_id]),
                    e.transaction.public_id,
                    e.transaction.kind,
                    e.phase,
                    e.amount,
                    e.balance_after,
                )
                for e in entries
            ),
        )
        header = mark_safe(
            "<tr><th>version</th><th>journal</th><th>kind</th><th>phase</th>"
            "<th>amount (+debit)</th><th>balance after</th></tr>"
        )
        return format_html("<table>{}{}</table>", header, rows)

    def get_urls(self):
        view = self.admin_site.admin_view(self.trial_balance_view)
        return [
            path("trial-balance/", view, name="ledger_trial_balance"),
            *super().get_urls(),
        ]

    def trial_balance_view(self, request):
        """Per mode and currency: each account family in the debit or credit column, with
        totals (equal when the ledger balances)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        livemode = request.GET.get("livemode")
        balances = selectors.trial_balance(
            livemode=None if livemode is None else livemode == "1",
            merchant_ids=merchant_ids_for_staff(request.user),
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "Trial balance",
            "opts": self.model._meta,
            "balances": balances,
            "scoped": not staff_sees_all(request.user),
        }
        return TemplateResponse(request, "admin/ledger/trial_balance.html", context)


class LedgerEntryInline(ReadOnlyMixin, admin.TabularInline):
    model = LedgerEntry
    fields = ("account_link", "phase", "debit", "credit", "balance_after", "account_version")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("account")

    @admin.display(description="account")
    def account_link(self, obj: LedgerEntry):
        return format_html(
            "<a href='{}'>{}</a>",
            reverse("admin:ledger_ledgeraccount_change", args=[obj.account_id]),
            obj.account.code,
        )

    @admin.display(description="debit")
    def debit(self, obj: LedgerEntry) -> int | str:
        return obj.debit or ""

    @admin.display(description="credit")
    def credit(self, obj: LedgerEntry) -> int | str:
        return obj.credit or ""


@admin.register(JournalTransaction)
class JournalTransactionAdmin(ReadOnlyLedgerAdmin):
    list_display = (
        "public_id",
        "kind",
        "merchant_id",
        "livemode",
        "currency",
        "moved",
        "source_type",
        "source_id",
        "created_at",
    )
    list_filter = ("kind", "livemode", "currency")
    # drill-down: exact matches use the indexes (source_id, public_id, idempotency_key)
    search_fields = ("=source_id", "=public_id", "=idempotency_key", "=merchant_id")
    readonly_fields = ("hold_status", "links")
    inlines = [LedgerEntryInline]

    def get_actions(self, request):
        # read-only (no bulk delete), but finance exports the list (issue 17)
        return {"export_csv": (export_csv, "export_csv", export_csv.short_description)}

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                moved_amount=Sum("entries__amount", filter=Q(entries__amount__gt=0)),
                resolved=Exists(JournalTransaction.objects.filter(resolves_id=OuterRef("pk"))),
            )
        )

    @admin.display(description="amount moved", ordering="moved_amount")
    def moved(self, obj: JournalTransaction) -> str:
        return format_amount(obj.moved_amount or 0, obj.currency)

    @admin.display(description="hold status")
    def hold_status(self, obj: JournalTransaction) -> str:
        if obj.kind != JournalTransaction.Kind.AUTHORIZATION_HOLD:
            return "-"
        return selectors.hold_status(hold=obj)

    @admin.display(description="linked journals")
    def links(self, obj: JournalTransaction):
        linked = [
            ("resolves", obj.resolves),
            ("reverses", obj.reverses),
            ("settles", obj.settles),
            *(("resolved by", j) for j in obj.resolved_by_set.all()),
            *(("reversed by", j) for j in obj.reversed_by_set.all()),
            *(("released by", j) for j in obj.released_by_set.all()),
        ]
        items = format_html_join(
            "",
            "<li>{} <a href='{}'>{}</a> ({})</li>",
            (
                (
                    label,
                    reverse("admin:ledger_journaltransaction_change", args=[journal.pk]),
                    journal.public_id,
                    journal.kind,
                )
                for label, journal in linked
                if journal is not None
            ),
        )
        return format_html("<ul>{}</ul>", items) if items else "-"


class DriftFindingInline(ReadOnlyMixin, admin.TabularInline):
    model = DriftFinding
    fields = (
        "kind",
        "account",
        "transaction",
        "merchant_id",
        "currency",
        "expected",
        "actual",
        "detail",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(DriftCheckRun)
class DriftCheckRunAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Drift runs span every merchant: only staff who see all merchants see them."""

    list_display = (
        "id",
        "started_at",
        "finished_at",
        "status",
        "accounts_checked",
        "transactions_checked",
        "entries_checked",
        "findings_count",
    )
    list_filter = ("status",)
    readonly_fields = list_display
    inlines = [DriftFindingInline]
    paginator = CappedCountPaginator
    show_full_result_count = False

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset if staff_sees_all(request.user) else queryset.none()
