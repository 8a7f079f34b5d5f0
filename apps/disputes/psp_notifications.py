"""Registers the disputes app as the owner of dispute notifications (event type "chargeback":
Adyen's dispute event codes, Stripe's charge.dispute.*)."""

from __future__ import annotations

from apps.events.notifications import NotificationOutcome, notification_handler_register
from apps.psp_adapters.contract import WebhookEvent


def apply_dispute_notification(connector_id: int, event: WebhookEvent) -> NotificationOutcome:
    from apps.disputes.services import dispute_apply_notification

    return dispute_apply_notification(connector_id=connector_id, event=event)


def notification_handlers_register() -> None:
    notification_handler_register("chargeback", apply_dispute_notification)
