"""Thin Celery tasks: load ids, call one service."""

from celery import shared_task

from apps.events import inbound, relay, services


@shared_task(name="events.relay_outbox")
def relay_outbox() -> int:
    """Enqueued when a transaction with outbox rows commits, and run by beat as the sweep."""
    services.outbox_relay_started()
    return relay.outbox_relay()


@shared_task(name="events.deliver_webhooks")
def deliver_webhooks(delivery_ids: list[int]) -> int:
    return services.webhook_deliveries_deliver(delivery_ids=delivery_ids)


@shared_task(name="events.deliver_due_webhooks")
def deliver_due_webhooks() -> int:
    return services.webhook_deliveries_deliver_due()


@shared_task(name="events.disable_failing_endpoints")
def disable_failing_endpoints() -> int:
    return services.webhook_endpoints_disable_failing()


@shared_task(name="events.process_psp_webhook")
def process_psp_webhook(webhook_id: int) -> None:
    inbound.inbound_webhook_process(webhook_id=webhook_id)


@shared_task(name="events.process_due_psp_webhooks")
def process_due_psp_webhooks() -> int:
    return inbound.inbound_webhooks_process_due()
