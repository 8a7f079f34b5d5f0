"""Ops: merchant webhook endpoints and deliveries, PSP webhooks, and the dead letters of both
directions, with replay / reprocess actions behind `core.replay_webhook`. Every action goes
through the services."""

from __future__ import annotations

import json
from datetime import timedelta

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from apps.core.admin_scoping import MerchantScopedAdmin
from apps.core.audit import Actor
from apps.core.errors import PlatformError
from apps.events import inbound, services
from apps.events.models import (
    DeadLetteredDelivery,
    DeadLetteredInboundWebhook,
    Event,
    InboundWebhook,
    OutboxEvent,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
)


class ReadOnlyAdmin(MerchantScopedAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReplayPermissionMixin:
    def has_replay_permission(self, request) -> bool:
        return request.user.has_perm("core.replay_webhook")


def _pretty(value) -> str:
    return format_html(
        "<pre style='white-space: pre-wrap'>{}</pre>",
        json.dumps(value, indent=2, sort_keys=True, default=str),
    )


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "event_type", "object_id", "sequence", "created_at", "relayed_at")
    list_filter = ("event_type", "object_type")
    search_fields = ("=object_id", "=request_id")
    readonly_fields = [f.name for f in OutboxEvent._meta.fields]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = (
        "public_id",
        "merchant",
        "type",
        "object_id",
        "sequence",
        "livemode",
        "created_at",
    )
    list_filter = ("type", "livemode")
    list_select_related = ("merchant",)
    search_fields = ("=public_id", "=object_id", "=request_id", "=idempotency_key")
    readonly_fields = [f.name for f in Event._meta.fields if f.name != "data"] + ["data_pretty"]
    exclude = ("data",)

    @admin.display(description="object at that moment")
    def data_pretty(self, obj):
        return _pretty(obj.data)


# --------------------------------------------------------------------------- endpoints


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReplayPermissionMixin, MerchantScopedAdmin):
    list_display = (
        "public_id",
        "merchant",
        "url",
        "status",
        "livemode",
        "failing_since",
        "last_success_at",
        "created_at",
    )
    list_filter = ("status", "livemode")
    list_select_related = ("merchant",)
    search_fields = ("=public_id", "url", "=merchant__public_id")
    fields = (
        "public_id",
        "merchant",
        "livemode",
        "url",
        "description",
        "enabled_events",
        "status",
        "disabled_reason",
        "failing_since",
        "last_success_at",
        "previous_secret_expires_at",
        "created_at",
        "updated_at",
        "deleted_at",
        "recent_deliveries",
    )
    readonly_fields = fields
    actions = ["replay_failed_last_day", "replay_failed_last_week"]

    def has_add_permission(self, request):
        return False  # merchants create endpoints through the API (the secret is theirs)

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="recent deliveries")
    def recent_deliveries(self, obj):
        rows = obj.deliveries.select_related("event").order_by("-id")[:20]
        return format_html(
            "<table>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} tries</td><td>{}</td></tr>",
                (
                    (
                        d.public_id,
                        d.event.type,
                        d.status,
                        d.attempt_count,
                        d.last_status_code or d.last_error,
                    )
                    for d in rows
                ),
            ),
        )

    def _replay_since(self, request, queryset, days: int):
        since = timezone.now() - timedelta(days=days)
        actor = Actor.staff(request.user)
        for endpoint in queryset:
            try:
                count = services.webhook_deliveries_replay_failed(
                    endpoint=endpoint, since=since, actor=actor
                )
                messages.success(request, f"{endpoint.public_id}: {count} deliveries replayed.")
            except PlatformError as exc:
                messages.error(request, f"{endpoint.public_id}: {exc.message}")

    @admin.action(
        description="Replay failed deliveries of the last 24 hours", permissions=["replay"]
    )
    def replay_failed_last_day(self, request, queryset):
        self._replay_since(request, queryset, 1)

    @admin.action(description="Replay failed deliveries of the last 7 days", permissions=["replay"])
    def replay_failed_last_week(self, request, queryset):
        self._replay_since(request, queryset, 7)


# --------------------------------------------------------------------------- deliveries


class WebhookDeliveryAttemptInline(admin.TabularInline):
    model = WebhookDeliveryAttempt
    extra = 0
    can_delete = False
    fields = (
        "number",
        "started_at",
        "latency_ms",
        "status_code",
        "succeeded",
        "error",
        "response_body",
    )
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReplayPermissionMixin, ReadOnlyAdmin):
    merchant_path = "merchant_id"
    list_display = (
        "public_id",
        "event_type",
        "endpoint_url",
        "status",
        "attempt_count",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "created_at",
    )
    list_filter = ("status", "livemode")
    list_select_related = ("event", "endpoint")
    search_fields = ("=public_id", "=event__public_id", "=endpoint__public_id", "=event__object_id")
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    inlines = [WebhookDeliveryAttemptInline]
    actions = ["replay_selected"]

    @admin.display(description="event", ordering="event__type")
    def event_type(self, obj):
        return obj.event.type

    @admin.display(description="endpoint")
    def endpoint_url(self, obj):
        return obj.endpoint.url

    @admin.action(description="Replay selected deliveries now", permissions=["replay"])
    def replay_selected(self, request, queryset: QuerySet):
        actor = Actor.staff(request.user)
        for delivery in queryset:
            try:
                services.webhook_delivery_replay(delivery=delivery, actor=actor)
                messages.success(request, f"{delivery.public_id} queued again.")
            except PlatformError as exc:
                messages.error(request, f"{delivery.public_id}: {exc.message}")


@admin.register(DeadLetteredDelivery)
class DeadLetteredDeliveryAdmin(WebhookDeliveryAdmin):
    list_filter = ("livemode",)

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status=WebhookDelivery.Status.DEAD)


# --------------------------------------------------------------------------- inbound


@admin.register(InboundWebhook)
class InboundWebhookAdmin(ReplayPermissionMixin, ReadOnlyAdmin):
    list_display = (
        "public_id",
        "connector",
        "psp_event_id",
        "event_types",
        "verification",
        "status",
        "attempts",
        "received_at",
        "result_summary",
    )
    list_filter = ("status", "verification", "connector__connector_type", "livemode")
    list_select_related = ("connector",)
    search_fields = ("=public_id", "psp_event_id", "=connector__public_id")
    fields = (
        "public_id",
        "connector",
        "merchant_id",
        "livemode",
        "received_at",
        "remote_addr",
        "verification",
        "verification_error",
        "psp_event_id",
        "duplicate_of",
        "event_types",
        "status",
        "attempts",
        "retry_count",
        "next_attempt_at",
        "last_error",
        "processed_at",
        "what_it_changed",
        "headers",
        "raw_body",
    )
    readonly_fields = fields
    actions = ["reprocess_selected"]

    def get_search_results(self, request, queryset, search_term):
        """A payment's id also finds the notifications that changed it (linked from the
        intent's page, issue 17): their recorded outcome names the object."""
        queryset, duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if term.startswith(("pi_", "re_", "po_")) and " " not in term:
            by_object = self.model.objects.filter(outcome__contains=[{"object": term}])
            scoped = super().get_queryset(request).filter(pk__in=by_object.values("pk"))
            queryset = queryset | scoped
        return queryset, duplicates

    @admin.display(description="result")
    def result_summary(self, obj):
        return ", ".join(f"{r.get('result')}: {r.get('reason')}" for r in obj.outcome[-2:])[:160]

    @admin.display(description="what it changed")
    def what_it_changed(self, obj):
        return _pretty(obj.outcome)

    @admin.display(description="raw body")
    def raw_body(self, obj):
        return format_html(
            "<pre style='white-space: pre-wrap'>{}</pre>",
            bytes(obj.body).decode("utf-8", "replace"),
        )

    @admin.action(description="Reprocess selected PSP webhooks now", permissions=["replay"])
    def reprocess_selected(self, request, queryset: QuerySet):
        actor = Actor.staff(request.user)
        for webhook in queryset:
            try:
                result = inbound.inbound_webhook_reprocess(webhook=webhook, actor=actor)
                messages.success(request, f"{webhook.public_id}: {result.status}.")
            except PlatformError as exc:
                messages.error(request, f"{webhook.public_id}: {exc.message}")


@admin.register(DeadLetteredInboundWebhook)
class DeadLetteredInboundWebhookAdmin(InboundWebhookAdmin):
    list_filter = ("connector__connector_type", "livemode")

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status=InboundWebhook.Status.DEAD)
