"""Ops back-office for connectors: their settings (endpoint chosen among the platform's, never a
URL), health and breakers. Every write goes through apps.connectors.services, so the admin gives
the API's validation and writes the same audit log."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from apps.connectors import endpoints, selectors, services
from apps.connectors.models import Connector
from apps.connectors.representations import endpoint_url_or_none
from apps.core.admin_scoping import MerchantScopedAdmin, merchant_ids_for_staff
from apps.core.audit import Actor
from apps.core.errors import PlatformError
from apps.psp_adapters.registry import connector_types

# the form edits the settings the services take, but the simulated account: the service gives a
# simulator connector its own
CONNECTOR_FIELDS = tuple(f for f in services.CONNECTOR_SETTINGS if f != "simulator_account")


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
