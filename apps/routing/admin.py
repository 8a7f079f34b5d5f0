"""Ops back-office for routing: connectors (health, breakers), profiles and their versions
(editor, activation, backtest), and per-merchant failover settings. Every write goes through
apps.routing.services, so the admin gives the API's validation and writes the same audit log."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.utils.html import format_html, format_html_join

from apps.core.admin_scoping import MerchantScopedAdmin, merchant_ids_for_staff
from apps.core.audit import Actor
from apps.core.errors import PlatformError
from apps.psp_adapters.registry import connector_types
from apps.routing import endpoints, selectors, services
from apps.routing.backtest import routing_backtest
from apps.routing.models import Connector, RoutingProfile, RoutingProfileVersion, RoutingSettings
from apps.routing.representations import endpoint_url_or_none

CONNECTOR_FIELDS = (
    "name",
    "connector_type",
    "endpoint",
    "live_url_prefix",
    "enabled",
    "priority",
    "supported_currencies",
    "supported_brands",
    "supported_countries",
    "fee_schedule",
    "authorization_window_days",
    "settlement_delay_days",
    "connect_timeout_ms",
    "read_timeout_ms",
)


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


# --------------------------------------------------------------------------- connectors


ENDPOINT_LABELS = {
    endpoints.PRODUCTION: "production: the PSP's live API",
    endpoints.TEST: "test: the PSP's test API",
    endpoints.SIMULATOR: "simulator: the platform's PSP simulator",
}


def _endpoint_choices(connector_type: str | None = None, livemode: bool | None = None):
    """The platform's endpoints (for one type and mode once those are fixed): ops choose among
    them, never type a URL."""
    if connector_type is None:
        names = {
            name
            for t in connector_types()
            for mode in (False, True)
            for name in endpoints.allowed(t, mode)
        }
    else:
        names = set(endpoints.allowed(connector_type, bool(livemode)))
    ordered = [n for n in ENDPOINT_LABELS if n in names] + sorted(names - set(ENDPOINT_LABELS))
    return [("", "the mode's default")] + [(n, ENDPOINT_LABELS.get(n, n)) for n in ordered]


_SHOWN_ONCE_SAVED = ("credentials_hint", "disabled_reason", "disabled_at", "endpoint_url")


class ConnectorAdminForm(forms.ModelForm):
    connector_type = forms.ChoiceField(choices=())
    endpoint = forms.ChoiceField(
        choices=(),
        required=False,
        help_text="Where its requests go: one of the platform's endpoints for the type and mode "
        "(settings.PSP_ENDPOINTS). Default: production in live mode, test in test mode.",
    )
    live_url_prefix = forms.CharField(
        required=False,
        max_length=49,
        help_text="Adyen live only: the live URL prefix from the Adyen Customer Area.",
    )
    credentials_json = forms.CharField(
        label="credentials",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text='JSON, e.g. {"api_key": "sk_…", "webhook_secret": "whsec_…"}. Write-only: '
        "stored encrypted, never shown again; leave empty to keep the current ones.",
    )

    class Meta:
        model = Connector
        fields = ("merchant", "livemode", *CONNECTOR_FIELDS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["connector_type"].choices = [(t, t) for t in connector_types()]
        if self.instance.pk:
            for name in ("merchant", "livemode", "connector_type"):
                self.fields[name].disabled = True
            self.fields["endpoint"].choices = _endpoint_choices(
                self.instance.connector_type, self.instance.livemode
            )
        else:
            self.fields["endpoint"].choices = _endpoint_choices()

    def clean_credentials_json(self):
        raw = self.cleaned_data.get("credentials_json") or ""
        if not raw.strip():
            if not self.instance.pk:
                raise forms.ValidationError("Credentials are required for a new connector.")
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            raise forms.ValidationError("Not valid JSON.") from None
        return value

    def clean(self):
        cleaned = super().clean()
        values = {k: cleaned[k] for k in CONNECTOR_FIELDS if k in cleaned}
        if cleaned.get("credentials_json") is not None:
            values["credentials"] = cleaned["credentials_json"]
        try:
            normalized = services.connector_validate(**values)
            if cleaned.get("connector_type") in connector_types():
                same = self.instance.pk and values.get("endpoint") == self.instance.endpoint
                normalized.update(
                    services.connector_endpoint_validate(
                        connector_type=cleaned["connector_type"],
                        livemode=bool(cleaned.get("livemode")),
                        endpoint=values.get("endpoint") or None,
                        live_url_prefix=values.get("live_url_prefix") or "",
                        simulator_account=self.instance.simulator_account if same else "",
                        public_id=self.instance.public_id or "mca_new",
                    )
                )
        except PlatformError as exc:
            field = _field_for(exc.param, self.fields) or (
                "credentials_json" if (exc.param or "").startswith("credentials") else None
            )
            self.add_error(field, f"{exc.param}: {exc.message}" if exc.param else exc.message)
            return cleaned
        cleaned.update({k: v for k, v in normalized.items() if k in CONNECTOR_FIELDS})
        return cleaned


@admin.register(Connector)
class ConnectorAdmin(_MerchantChoicesMixin, MerchantScopedAdmin):
    form = ConnectorAdminForm
    list_display = (
        "name",
        "public_id",
        "merchant",
        "connector_type",
        "endpoint",
        "enabled",
        "disabled_reason",
        "breaker",
        "priority",
        "livemode",
    )
    list_filter = ("connector_type", "endpoint", "enabled", "disabled_reason", "livemode")
    list_select_related = ("merchant",)
    search_fields = ("=public_id", "name", "merchant__name")
    readonly_fields = (
        "public_id",
        "endpoint_url",
        "credentials_hint",
        "health",
        "disabled_reason",
        "disabled_at",
        "created_at",
        "updated_at",
    )
    actions = ["force_breaker_open", "force_breaker_closed", "release_breaker"]

    def get_fieldsets(self, request, obj=None):
        main = [
            "merchant",
            "livemode",
            "name",
            "connector_type",
            "endpoint",
            "live_url_prefix",
            "endpoint_url",
            "credentials_json",
            "credentials_hint",
            "enabled",
            "disabled_reason",
            "disabled_at",
            "priority",
        ]
        return [
            (
                None,
                {"fields": main if obj else [f for f in main if f not in _SHOWN_ONCE_SAVED]},
            ),
            (
                "Coverage and fees",
                {
                    "fields": [
                        "supported_currencies",
                        "supported_brands",
                        "supported_countries",
                        "fee_schedule",
                    ]
                },
            ),
            (
                "Timing",
                {
                    "fields": [
                        "authorization_window_days",
                        "settlement_delay_days",
                        "connect_timeout_ms",
                        "read_timeout_ms",
                    ]
                },
            ),
            (
                "Health",
                {"fields": (["public_id", "health", "created_at", "updated_at"] if obj else [])},
            ),
        ]

    @staticmethod
    def _health_for(obj):
        return selectors.connector_health(connectors=[obj])[obj.public_id]

    @admin.display(description="endpoint URL")
    def endpoint_url(self, obj):
        url = endpoint_url_or_none(obj) if obj and obj.pk else None
        return url or "refused: not an endpoint the platform allows for this type and mode"

    @admin.display(description="breaker")
    def breaker(self, obj):
        return self._health_for(obj).breaker_state

    @admin.display(description="health (rolling window)")
    def health(self, obj):
        view = self._health_for(obj)
        rows = view.as_dict()
        return format_html(
            "<table>{}</table>",
            format_html_join(
                "", "<tr><th>{}</th><td>{}</td></tr>", ((k, v) for k, v in rows.items())
            ),
        )

    def save_model(self, request, obj, form, change):
        actor = Actor.staff(request.user)
        data = {k: form.cleaned_data[k] for k in CONNECTOR_FIELDS if k in form.cleaned_data}
        credentials = form.cleaned_data.get("credentials_json")
        if change:
            current = Connector.objects.get(pk=obj.pk)
            changes = {
                k: v for k, v in data.items() if k != "connector_type" and getattr(current, k) != v
            }
            saved = services.connector_update(
                connector=current, actor=actor, credentials=credentials, **changes
            )
        else:
            saved = services.connector_create(
                merchant=form.cleaned_data["merchant"],
                livemode=form.cleaned_data["livemode"],
                credentials=credentials,
                actor=actor,
                **data,
            )
        obj.pk, obj.public_id = saved.pk, saved.public_id

    # ops override of the breaker: its own permission, always through the service
    def has_force_breaker_permission(self, request):
        return request.user.has_perm("core.force_breaker")

    def _force(self, request, queryset, mode):
        actor = Actor.staff(request.user)
        for connector in queryset:
            state = services.connector_breaker_force(connector=connector, mode=mode, actor=actor)
            messages.success(request, f"{connector.name}: breaker {state}.")

    @admin.action(description="Force breaker OPEN (no traffic)", permissions=["force_breaker"])
    def force_breaker_open(self, request, queryset):
        self._force(request, queryset, "open")

    @admin.action(description="Force breaker CLOSED (all traffic)", permissions=["force_breaker"])
    def force_breaker_closed(self, request, queryset):
        self._force(request, queryset, "closed")

    @admin.action(description="Release breaker (automatic, reset)", permissions=["force_breaker"])
    def release_breaker(self, request, queryset):
        self._force(request, queryset, None)


# --------------------------------------------------------------------------- profiles


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
