"""Ops back-office for routing: profiles and their versions (editor, activation, backtest), and
per-merchant failover settings. Every write goes through apps.routing.services, so the admin
gives the API's validation and writes the same audit log. Connectors: apps.connectors.admin."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.utils.html import format_html

from apps.core.admin_scoping import MerchantScopedAdmin, merchant_ids_for_staff
from apps.core.audit import Actor
from apps.core.errors import PlatformError
from apps.routing import selectors, services
from apps.routing.backtest import routing_backtest
from apps.routing.models import RoutingProfile, RoutingProfileVersion, RoutingSettings


def _field_for(param: str | None, fields) -> str | None:
    """'fee_schedule[0][fixed]' -> 'fee_schedule' when that is a form field."""
    head = (param or "").split("[")[0]
    return head if head in fields else None


class _MerchantChoicesMixin:
    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "merchant":
            ids = merchant_ids_for_staff(request.user)
            if ids is not None:
                kwargs["queryset"] = db_field.remote_field.model.objects.filter(id__in=ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


def _pretty(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


class RoutingProfileAdminForm(forms.ModelForm):
    rules_json = forms.CharField(
        label="rules",
        widget=forms.Textarea(attrs={"rows": 24, "cols": 100, "style": "font-family: monospace"}),
        help_text='Ordered, first match wins: [{"name", "match": "all"|"any", "conditions": '
        '[{"field", "op", "value"}], "strategy": {"type", …}}]. Saving a change '
        "records a new version (see docs/routing.md).",
    )
    fallback_json = forms.CharField(
        label="fallback",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 100}),
        help_text='Connector ids, e.g. ["mca_…", "mca_…"].',
    )
    note = forms.CharField(
        required=False, max_length=500, help_text="What changed in this version and why."
    )
    activate_now = forms.BooleanField(required=False, help_text="Activate the new version on save.")

    class Meta:
        model = RoutingProfile
        fields = ("merchant", "livemode", "name")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            for name in ("merchant", "livemode"):
                self.fields[name].disabled = True
            latest = selectors.routing_profile_latest_version(profile=self.instance)
            if latest is not None:
                self.initial.setdefault("rules_json", _pretty(latest.rules))
                self.initial.setdefault("fallback_json", _pretty(latest.fallback))

    def _json(self, name):
        raw = self.cleaned_data.get(name) or ""
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None

    def clean_rules_json(self):
        return self._json("rules_json")

    def clean_fallback_json(self):
        return self._json("fallback_json")

    def clean(self):
        cleaned = super().clean()
        merchant = cleaned.get("merchant") or getattr(self.instance, "merchant", None)
        if merchant is None or "rules_json" not in cleaned:
            return cleaned
        try:
            services.routing_rules_validate(
                merchant_id=merchant.id,
                livemode=cleaned.get("livemode", False),
                rules=cleaned["rules_json"],
                fallback=cleaned.get("fallback_json"),
            )
        except PlatformError as exc:
            field = "fallback_json" if (exc.param or "").startswith("fallback") else "rules_json"
            self.add_error(field, f"{exc.param}: {exc.message}")
        return cleaned


class RoutingProfileVersionInline(admin.TabularInline):
    model = RoutingProfileVersion
    extra = 0
    can_delete = False
    fields = ("number", "note", "created_by", "created_at", "rule_names")
    readonly_fields = fields
    ordering = ("-number",)

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="rules")
    def rule_names(self, obj):
        return "; ".join(
            f"{r.get('name')} → {r.get('strategy', {}).get('type')}" for r in obj.rules
        )


@admin.register(RoutingProfile)
class RoutingProfileAdmin(_MerchantChoicesMixin, MerchantScopedAdmin):
    form = RoutingProfileAdminForm
    list_display = (
        "name",
        "public_id",
        "merchant",
        "livemode",
        "is_active",
        "active_version_number",
        "activated_at",
    )
    list_filter = ("is_active", "livemode")
    list_select_related = ("merchant", "active_version")
    search_fields = ("=public_id", "name", "merchant__name")
    readonly_fields = (
        "public_id",
        "is_active",
        "active_version_number",
        "activated_at",
        "created_at",
        "updated_at",
    )
    inlines = [RoutingProfileVersionInline]
    actions = ["activate_latest", "deactivate"]

    def get_fields(self, request, obj=None):
        fields = [
            "merchant",
            "livemode",
            "name",
            "rules_json",
            "fallback_json",
            "note",
            "activate_now",
        ]
        return fields + (list(self.readonly_fields) if obj else [])

    @admin.display(description="active version")
    def active_version_number(self, obj):
        return obj.active_version.number if obj.is_active and obj.active_version_id else "—"

    def save_model(self, request, obj, form, change):
        actor = Actor.staff(request.user)
        data = form.cleaned_data
        if change:
            latest = selectors.routing_profile_latest_version(profile=obj)
            changed = (
                latest is None
                or data["rules_json"] != latest.rules
                or ((data.get("fallback_json") or []) != latest.fallback)
            )
            saved = services.routing_profile_update(
                profile=obj,
                actor=actor,
                name=data["name"],
                rules=data["rules_json"] if changed else None,
                fallback=data.get("fallback_json") if changed else None,
                note=data.get("note", ""),
                activate=data.get("activate_now", False),
            )
            if not changed and data.get("activate_now"):
                saved = services.routing_profile_activate(profile=saved, actor=actor)
        else:
            saved = services.routing_profile_create(
                merchant=data["merchant"],
                livemode=data.get("livemode", False),
                name=data["name"],
                rules=data["rules_json"],
                fallback=data.get("fallback_json"),
                actor=actor,
                note=data.get("note", ""),
                activate=data.get("activate_now", False),
            )
        obj.pk, obj.public_id = saved.pk, saved.public_id

    def has_activate_permission(self, request):
        return request.user.has_perm("routing.change_routingprofile")

    @admin.action(description="Activate the latest version", permissions=["activate"])
    def activate_latest(self, request, queryset):
        for profile in queryset:
            try:
                profile = services.routing_profile_activate(
                    profile=profile, actor=Actor.staff(request.user)
                )
                messages.success(
                    request, f"{profile.name}: version {profile.active_version.number} active."
                )
            except PlatformError as exc:
                messages.error(request, f"{profile.name}: {exc.message}")

    @admin.action(description="Deactivate (route by connector priority)", permissions=["activate"])
    def deactivate(self, request, queryset):
        for profile in queryset:
            try:
                services.routing_profile_deactivate(
                    profile=profile, actor=Actor.staff(request.user)
                )
                messages.success(request, f"{profile.name}: deactivated.")
            except PlatformError as exc:
                messages.error(request, f"{profile.name}: {exc.message}")


@admin.register(RoutingProfileVersion)
class RoutingProfileVersionAdmin(MerchantScopedAdmin):
    merchant_path = "profile__merchant_id"
    list_display = ("profile", "number", "is_active_version", "note", "created_by", "created_at")
    list_select_related = ("profile", "profile__merchant")
    list_filter = ("profile__livemode",)
    search_fields = ("=profile__public_id", "profile__name")
    readonly_fields = (
        "profile",
        "number",
        "rules_pretty",
        "fallback",
        "note",
        "created_by",
        "created_at",
    )
    exclude = ("rules",)
    actions = ["activate_version", "backtest_30_days"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # immutable: an edit is a new version (edit the profile)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="active", boolean=True)
    def is_active_version(self, obj):
        return obj.profile.is_active and obj.profile.active_version_id == obj.pk

    @admin.display(description="rules")
    def rules_pretty(self, obj):
        return format_html("<pre>{}</pre>", _pretty(obj.rules))

    def has_activate_permission(self, request):
        return request.user.has_perm("routing.change_routingprofile")

    def has_backtest_permission(self, request):
        return request.user.has_perm("routing.view_routingprofileversion")

    @admin.action(
        description="Activate this version (also: re-activate an old one)", permissions=["activate"]
    )
    def activate_version(self, request, queryset):
        if queryset.count() != 1:
            messages.error(request, "Select exactly one version to activate.")
            return
        version = queryset.select_related("profile").first()
        try:
            services.routing_profile_activate(
                profile=version.profile,
                actor=Actor.staff(request.user),
                version_number=version.number,
            )
            messages.success(request, f"{version} is active.")
        except PlatformError as exc:
            messages.error(request, exc.message)

    @admin.action(description="Backtest on the last 30 days", permissions=["backtest"])
    def backtest_30_days(self, request, queryset):
        if queryset.count() > 5:
            raise PermissionDenied("Backtest at most five versions at a time.")
        reports = [routing_backtest(version=v, days=30) for v in queryset.select_related("profile")]
        return render(
            request,
            "admin/routing/backtest.html",
            {
                **self.admin_site.each_context(request),
                "title": "Routing backtest",
                "reports": [{"table": r.table(), "data": r.as_dict()} for r in reports],
            },
        )


@admin.register(RoutingSettings)
class RoutingSettingsAdmin(_MerchantChoicesMixin, MerchantScopedAdmin):
    list_display = ("merchant", "max_attempts", "time_budget_seconds", "updated_at")
    list_select_related = ("merchant",)
    search_fields = ("merchant__name", "=merchant__public_id")
    fields = ("merchant", "max_attempts", "time_budget_seconds")

    def save_model(self, request, obj, form, change):
        try:
            saved = services.routing_settings_update(
                merchant=form.cleaned_data["merchant"],
                actor=Actor.staff(request.user),
                max_attempts=form.cleaned_data.get("max_attempts"),
                time_budget_seconds=form.cleaned_data.get("time_budget_seconds"),
            )
        except PlatformError as exc:
            messages.error(request, exc.message)
            return
        obj.pk = saved.pk
