"""Risk staff's back-office (the `risk` group, scoped per merchant like the others): value lists
and items, rules with their versions and a 30-day test, the review queue (approve / reject, its
own permission), blocked payments with the rule that matched. Platform-wide lists and rules
(no merchant) are for the platform's own risk staff (superusers, `admin`). Every write goes
through apps.risk.services: the API's validation, the same audit log."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from apps.core.admin_scoping import MerchantScopedAdmin, merchant_ids_for_staff
from apps.core.audit import Actor, audit_record
from apps.core.errors import PlatformError
from apps.risk import services
from apps.risk.models import (
    BlockedPayment,
    DeclineHandling,
    Review,
    RiskRule,
    RiskRuleVersion,
    SurchargeRule,
    ValueList,
    ValueListItem,
)


class _MerchantChoices:
    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "merchant":
            ids = merchant_ids_for_staff(request.user)
            if ids is not None:
                kwargs["queryset"] = db_field.remote_field.model.objects.filter(id__in=ids)
                kwargs["required"] = True  # only the platform's staff make platform lists
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


def _form_error(form, exc: PlatformError, fields) -> None:
    field = exc.param if exc.param in fields else None
    form.add_error(field, f"{exc.message} ({exc.code})")


class ValueListForm(forms.ModelForm):
    class Meta:
        model = ValueList
        fields = ("merchant", "livemode", "alias", "name", "item_type")

    def clean(self):
        data = super().clean()
        if self.instance.pk is None and not self.errors:
            try:
                services.value_list_validate(
                    alias=data.get("alias", ""), item_type=data.get("item_type", "")
                )
            except PlatformError as exc:
                _form_error(self, exc, self.fields)
        return data


@admin.register(ValueList)
class ValueListAdmin(_MerchantChoices, MerchantScopedAdmin):
    form = ValueListForm
    list_display = ("alias", "name", "item_type", "merchant", "livemode", "created_at")
    list_filter = ("item_type", "livemode")
    search_fields = ("=public_id", "alias", "name")
    list_select_related = ("merchant",)

    def get_readonly_fields(self, request, obj=None):
        return ("merchant", "livemode", "alias", "item_type", "public_id") if obj else ()

    def save_model(self, request, obj, form, change):
        if change:  # the name only: the rest is read-only
            super().save_model(request, obj, form, change)
            return
        data = form.cleaned_data
        created = services.value_list_create(
            merchant_id=data["merchant"].id if data.get("merchant") else None,
            livemode=data.get("livemode", False),
            actor=Actor.staff(request.user),
            alias=data["alias"],
            name=data["name"],
            item_type=data["item_type"],
        )
        obj.pk, obj.public_id = created.pk, created.public_id

    def delete_model(self, request, obj):
        try:
            services.value_list_delete(value_list=obj, actor=Actor.staff(request.user))
        except PlatformError as exc:
            messages.error(request, exc.message)


class ValueListItemForm(forms.ModelForm):
    class Meta:
        model = ValueListItem
        fields = ("value_list", "value")

    def clean(self):
        data = super().clean()
        if not self.errors:
            try:
                data["value"] = services.value_list_item_validate(
                    value_list=data["value_list"], value=data.get("value", "")
                )
            except PlatformError as exc:
                _form_error(self, exc, self.fields)
        return data


@admin.register(ValueListItem)
class ValueListItemAdmin(MerchantScopedAdmin):
    merchant_path = "value_list__merchant_id"
    form = ValueListItemForm
    list_display = ("value", "value_list", "created_by", "created_at")
    search_fields = ("=value", "=public_id", "value_list__alias")
    list_select_related = ("value_list",)

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "value_list":
            ids = merchant_ids_for_staff(request.user)
            if ids is not None:
                kwargs["queryset"] = ValueList.objects.filter(merchant_id__in=ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        created = services.value_list_item_create(
            value_list=form.cleaned_data["value_list"],
            value=form.cleaned_data["value"],
            actor=Actor.staff(request.user),
        )
        obj.pk, obj.public_id = created.pk, created.public_id

    def delete_model(self, request, obj):
        services.value_list_item_delete(item=obj, actor=Actor.staff(request.user))


class RiskRuleForm(forms.ModelForm):
    note = forms.CharField(required=False, max_length=500, help_text="Why, for the version.")

    class Meta:
        model = RiskRule
        fields = ("merchant", "livemode", "action", "predicate", "description", "enabled")
        widgets = {"predicate": forms.Textarea(attrs={"rows": 3, "cols": 100})}
        help_texts = {
            "predicate": "e.g. :card_country: != :ip_country: and :amount: > 50000 "
            "(docs/risk.md). Saving a change records a new version."
        }

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        merchant = data.get("merchant") if self.instance.pk is None else self.instance.merchant
        livemode = data.get("livemode") if self.instance.pk is None else self.instance.livemode
        try:
            services.rule_validate(
                merchant_id=merchant.id if merchant else None,
                livemode=bool(livemode),
                action=data.get("action", ""),
                predicate=data.get("predicate", ""),
            )
        except PlatformError as exc:
            _form_error(self, exc, self.fields)
        return data


class RiskRuleVersionInline(admin.TabularInline):
    model = RiskRuleVersion
    fields = ("number", "action", "predicate", "enabled", "note", "created_by", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(RiskRule)
class RiskRuleAdmin(_MerchantChoices, MerchantScopedAdmin):
    form = RiskRuleForm
    list_display = ("public_id", "merchant", "action", "predicate", "enabled", "version")
    list_filter = ("action", "enabled", "livemode")
    search_fields = ("=public_id", "predicate")
    list_select_related = ("merchant",)
    inlines = [RiskRuleVersionInline]
    actions = ["test_last_30_days", "enable_selected", "disable_selected"]

    def get_readonly_fields(self, request, obj=None):
        return ("merchant", "livemode", "default_key", "version") if obj else ()

    def get_inlines(self, request, obj=None):
        return self.inlines if obj else []

    def save_model(self, request, obj, form, change):
        actor = Actor.staff(request.user)
        data = form.cleaned_data
        if change:
            saved = services.rule_update(
                rule=RiskRule.objects.get(pk=obj.pk),
                actor=actor,
                action=data["action"],
                predicate=data["predicate"],
                enabled=data["enabled"],
                description=data.get("description", ""),
                note=data.get("note", ""),
            )
        else:
            saved = services.rule_create(
                merchant_id=data["merchant"].id if data.get("merchant") else None,
                livemode=data.get("livemode", False),
                actor=actor,
                action=data["action"],
                predicate=data["predicate"],
                description=data.get("description", ""),
                enabled=data.get("enabled", True),
            )
        obj.pk, obj.public_id, obj.version = saved.pk, saved.public_id, saved.version

    def save_related(self, request, form, formsets, change):
        pass  # versions are written by the service

    def has_delete_permission(self, request, obj=None):
        return False  # disable instead: the versions stay

    @admin.action(description="Test against the last 30 days of payments")
    def test_last_30_days(self, request, queryset):
        for rule in queryset:
            result = services.rule_backtest(rule=rule, days=30)
            messages.info(
                request,
                f"{rule.public_id} ({rule.action} if {rule.predicate}): of {result['payments']} "
                f"payments, {result['matched']} match (block {result['would_block']}, review "
                f"{result['would_review']}, 3DS {result['would_request_3ds']}, allow "
                f"{result['would_allow']}).",
            )

    @admin.action(description="Enable selected")
    def enable_selected(self, request, queryset):
        for rule in queryset:
            services.rule_update(rule=rule, actor=Actor.staff(request.user), enabled=True)

    @admin.action(description="Disable selected")
    def disable_selected(self, request, queryset):
        for rule in queryset:
            services.rule_update(rule=rule, actor=Actor.staff(request.user), enabled=False)


class StaleFilter(admin.SimpleListFilter):
    title = "stale (open past the authorization window)"
    parameter_name = "stale"

    def lookups(self, request, model_admin):
        return [("yes", "stale")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            from datetime import timedelta

            from django.conf import settings

            cutoff = timezone.now() - timedelta(seconds=settings.RISK_REVIEW_STALE_SECONDS)
            return queryset.filter(status=Review.Status.OPEN, opened_at__lt=cutoff)
        return queryset


@admin.register(Review)
class ReviewAdmin(MerchantScopedAdmin):
    list_display = (
        "public_id",
        "payment_intent",
        "merchant",
        "amount_display",
        "rule",
        "risk_score",
        "risk_level",
        "status",
        "stale",
        "opened_at",
    )
    list_filter = ("status", StaleFilter, "livemode")
    search_fields = ("=public_id", "=payment_intent")
    list_select_related = ("merchant",)
    readonly_fields = [f.name for f in Review._meta.fields]
    actions = ["approve_selected", "reject_selected"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="amount")
    def amount_display(self, obj):
        return f"{obj.amount} {obj.currency.upper()}"

    @admin.display(description="stale", boolean=True)
    def stale(self, obj):
        return services.review_is_stale(obj)

    def has_decide_permission(self, request):
        return request.user.has_perm("risk.decide_review")

    @admin.action(
        description="Approve (captures if the merchant asked for it)", permissions=["decide"]
    )
    def approve_selected(self, request, queryset):
        self._run(request, queryset, services.review_approve, "approved")

    @admin.action(description="Reject (cancel or refund)", permissions=["decide"])
    def reject_selected(self, request, queryset):
        self._run(request, queryset, services.review_reject, "rejected")

    def _run(self, request, queryset, operation, verb):
        actor = Actor.staff(request.user)
        for review in queryset:
            try:
                operation(review=review, actor=actor)
                messages.success(request, f"{review.public_id} {verb}.")
            except PlatformError as exc:
                messages.error(request, f"{review.public_id}: {exc.message}")


@admin.register(BlockedPayment)
class BlockedPaymentAdmin(MerchantScopedAdmin):
    list_display = (
        "payment_intent",
        "merchant",
        "amount",
        "currency",
        "rule",
        "predicate",
        "risk_score",
        "created_at",
    )
    list_filter = ("livemode", "risk_level")
    search_fields = ("=payment_intent", "=rule")
    list_select_related = ("merchant",)
    readonly_fields = [f.name for f in BlockedPayment._meta.fields] + ["signals_display"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="signals")
    def signals_display(self, obj):
        return format_html("<pre>{}</pre>", obj.signals)


@admin.register(DeclineHandling)
class DeclineHandlingAdmin(admin.ModelAdmin):
    """Ops edit what happens after each decline; every change is in the audit log and applies
    in every process within retries.CACHE_SECONDS."""

    list_display = ("connector_type", "code", "decision", "note", "updated_by", "updated_at")
    list_filter = ("decision", "connector_type")
    list_editable = ("decision",)
    search_fields = ("code",)
    fields = ("connector_type", "code", "decision", "note", "updated_by", "updated_at")
    readonly_fields = ("updated_by", "updated_at")

    def save_model(self, request, obj, form, change):
        before = {f: str(form.initial.get(f)) for f in form.changed_data} if change else {}
        obj.updated_by = request.user.get_username()[:150]
        super().save_model(request, obj, form, change)
        audit_record(
            actor=Actor.staff(request.user),
            action="admin.decline_handling." + ("changed" if change else "added"),
            object_type="risk.declinehandling",
            object_id=f"{obj.connector_type}/{obj.code}",
            changes={f: [before.get(f), str(form.cleaned_data.get(f))] for f in form.changed_data},
        )

    def delete_model(self, request, obj):
        audit_record(
            actor=Actor.staff(request.user),
            action="admin.decline_handling.deleted",
            object_type="risk.declinehandling",
            object_id=f"{obj.connector_type}/{obj.code}",
        )
        super().delete_model(request, obj)


class SurchargeRuleForm(forms.ModelForm):
    class Meta:
        model = SurchargeRule
        fields = (
            "merchant",
            "livemode",
            "currency",
            "card_brand",
            "card_funding",
            "card_country",
            "percent_bps",
            "fixed",
            "cap",
        )


@admin.register(SurchargeRule)
class SurchargeRuleAdmin(_MerchantChoices, MerchantScopedAdmin):
    """Surcharges per merchant; created through the service (its checks: the cap, the EEA/UK
    ban, the currency); disable rather than delete."""

    form = SurchargeRuleForm
    list_display = (
        "public_id",
        "merchant",
        "currency",
        "card_brand",
        "card_funding",
        "card_country",
        "percent_bps",
        "fixed",
        "cap",
        "enabled",
    )
    list_filter = ("enabled", "currency")
    list_select_related = ("merchant",)

    def get_readonly_fields(self, request, obj=None):
        return [f for f in SurchargeRuleForm.Meta.fields] if obj else []

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        data = form.cleaned_data
        try:
            created = services.surcharge_rule_create(
                merchant_id=data["merchant"].id,
                livemode=data.get("livemode", False),
                actor=Actor.staff(request.user),
                currency=data["currency"],
                card_brand=data.get("card_brand") or "*",
                card_funding=data.get("card_funding") or "*",
                card_country=data.get("card_country") or "*",
                percent_bps=data.get("percent_bps") or 0,
                fixed=data.get("fixed") or 0,
                cap=data.get("cap"),
            )
        except PlatformError as exc:
            messages.error(request, f"{exc.message} ({exc.code})")
            return
        obj.pk, obj.public_id = created.pk, created.public_id
