"""Reads. Merchant scoping happens here, so no view can forget it."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Prefetch, QuerySet

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
