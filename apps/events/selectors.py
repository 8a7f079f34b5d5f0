"""Reads. Merchant scoping happens here, so no view can forget it."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Prefetch, Q, QuerySet

from apps.connectors import selectors as connector_selectors
from apps.core.errors import NotFoundError
from apps.events.models import (
    Event,
    InboundWebhook,
    OutboxEvent,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
)


def outbox_for_object(*, object_id: str):
    return OutboxEvent.objects.filter(object_id=object_id).order_by("sequence")


def event_list(
    *,
    merchant_id: int,
    livemode: bool,
    type: str | None = None,
    object_id: str | None = None,
    created_gte: datetime | None = None,
    created_gt: datetime | None = None,
    created_lte: datetime | None = None,
    created_lt: datetime | None = None,
) -> QuerySet[Event]:
    queryset = Event.objects.filter(merchant_id=merchant_id, livemode=livemode)
    if type:
        if type == "*":
            pass
        elif type.endswith(".*"):
            queryset = queryset.filter(type__startswith=type[:-1])
        else:
            queryset = queryset.filter(type=type)
    if object_id:
        queryset = queryset.filter(object_id=object_id)
    for lookup, value in (
        ("gte", created_gte),
        ("gt", created_gt),
        ("lte", created_lte),
        ("lt", created_lt),
    ):
        if value is not None:
            queryset = queryset.filter(**{f"created_at__{lookup}": value})
    return queryset


def event_get(*, merchant_id: int, livemode: bool, public_id: str) -> Event:
    try:
        return Event.objects.get(merchant_id=merchant_id, livemode=livemode, public_id=public_id)
    except Event.DoesNotExist:
        raise NotFoundError(f"No such event: {public_id!r}.", param="id") from None


def webhook_endpoint_list(*, merchant_id: int, livemode: bool) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(
        merchant_id=merchant_id, livemode=livemode, deleted_at__isnull=True
    )


def webhook_endpoint_find(*, merchant_id: int, livemode: bool, url: str) -> WebhookEndpoint | None:
    """The merchant's live (not deleted) endpoint with this URL, if any."""
    return webhook_endpoint_list(merchant_id=merchant_id, livemode=livemode).filter(url=url).first()


def webhook_endpoint_get(*, merchant_id: int, livemode: bool, public_id: str) -> WebhookEndpoint:
    try:
        return webhook_endpoint_list(merchant_id=merchant_id, livemode=livemode).get(
            public_id=public_id
        )
    except WebhookEndpoint.DoesNotExist:
        raise NotFoundError(f"No such webhook endpoint: {public_id!r}.", param="id") from None


def webhook_delivery_list(
    *, endpoint: WebhookEndpoint, status: str | None = None
) -> QuerySet[WebhookDelivery]:
    queryset = WebhookDelivery.objects.filter(endpoint=endpoint)
    if status:
        queryset = queryset.filter(status=status)
    return queryset.select_related("event", "endpoint").prefetch_related(
        Prefetch("attempts", queryset=WebhookDeliveryAttempt.objects.order_by("number"))
    )


def webhook_delivery_get(*, endpoint: WebhookEndpoint, public_id: str) -> WebhookDelivery:
    try:
        return webhook_delivery_list(endpoint=endpoint).get(public_id=public_id)
    except WebhookDelivery.DoesNotExist:
        raise NotFoundError(f"No such webhook delivery: {public_id!r}.", param="id") from None


def connector_for_webhooks(*, public_id: str):
    return connector_selectors.connector_get_for_webhook(public_id=public_id)


def connectors_by_ids(*, ids: list[int]):
    return connector_selectors.connectors_by_ids(ids=ids)


def inbound_rejections(*, connector_id: int, since: datetime) -> int:
    """The rejection counter: notifications refused for a bad signature since `since`."""
    return InboundWebhook.objects.filter(
        connector_id=connector_id,
        verification=InboundWebhook.Verification.FAILED,
        received_at__gte=since,
    ).count()


# --------------------------------------------------------------------------- money audit
# Plain rows for `apps.money_audit`.


def audit_counts() -> dict:
    def by(queryset, field: str) -> dict[str, int]:
        rows = queryset.values_list(field).annotate(n=Count("id")).order_by(field)
        return {value: n for value, n in rows}

    return {
        "outbox": OutboxEvent.objects.count(),
        "outbox_unrelayed": OutboxEvent.objects.filter(relayed_at__isnull=True).count(),
        "events": Event.objects.count(),
        "deliveries": by(WebhookDelivery.objects.all(), "status"),
        "psp_webhooks": by(InboundWebhook.objects.all(), "status"),
    }


def audit_outbox_unrelayed(*, created_before: datetime) -> list[dict]:
    """Outbox rows the relay has not turned into an event since before `created_before`."""
    return list(
        OutboxEvent.objects.filter(relayed_at__isnull=True, created_at__lt=created_before)
        .order_by("id")
        .values("id", "event_type", "object_id", "created_at")
    )


def audit_deliveries_overdue(*, due_before: datetime) -> list[dict]:
    """Webhook deliveries still pending although their next try was due before `due_before`
    (or that have no next try at all): neither delivered nor dead-lettered, and stuck."""
    return list(
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING)
        .filter(Q(next_attempt_at__lt=due_before) | Q(next_attempt_at__isnull=True))
        .order_by("id")
        .values("public_id", "event__public_id", "event__type", "next_attempt_at", "attempt_count")
    )


def audit_psp_webhooks_overdue(*, due_before: datetime) -> list[dict]:
    """PSP notifications not processed, rejected, duplicate or dead-lettered, whose next try
    was due before `due_before` (or received before it and never scheduled)."""
    open_states = [
        InboundWebhook.Status.RECEIVED,
        InboundWebhook.Status.PENDING,
        InboundWebhook.Status.PROCESSING,
        InboundWebhook.Status.RETRYING,
    ]
    return list(
        InboundWebhook.objects.filter(status__in=open_states)
        .filter(
            Q(next_attempt_at__lt=due_before)
            | Q(next_attempt_at__isnull=True, received_at__lt=due_before)
        )
        .order_by("id")
        .values("public_id", "status", "event_types", "next_attempt_at", "last_error")
    )
