"""Outbound events: the outbox, merchant webhook endpoints, deliveries, replay, disabling.

Callers import the services from here (`from apps.events import services`); the package is split
by what they write:
- `outbox`: the transactional outbox (`outbox_record`) and scheduling its relay on commit;
- `endpoints`: merchant webhook endpoints (create, update, delete, roll the secret) and the
  beat task that disables an endpoint failing for days;
- `deliveries`: the delivery loop (claim, send, record, retry, dead-letter) and replay;
- `psp_webhooks`: handing a stored inbound PSP notification to Celery;
- `_shared`: the private helper they share.
The relay (outbox -> events -> deliveries) is in `apps/events/relay.py`, inbound PSP webhooks
(receive, verify, store, dispatch) in `apps/events/inbound.py`."""

from apps.events.services.deliveries import (
    enqueue_deliveries,
    webhook_deliveries_deliver,
    webhook_deliveries_deliver_due,
    webhook_deliveries_replay_failed,
    webhook_delivery_replay,
)
from apps.events.services.endpoints import (
    IssuedEndpoint,
    endpoint_signing_keys,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_roll_secret,
    webhook_endpoint_update,
    webhook_endpoints_disable_failing,
)
from apps.events.services.outbox import (
    RELAY_QUEUED_KEY,
    outbox_insert_statement,
    outbox_new_object_statement,
    outbox_record,
    outbox_record_change,
    outbox_record_new_object,
    outbox_record_select,
    outbox_relay_schedule,
    outbox_relay_started,
)
from apps.events.services.psp_webhooks import psp_webhook_enqueue_processing

__all__ = [
    "RELAY_QUEUED_KEY",
    "IssuedEndpoint",
    "endpoint_signing_keys",
    "enqueue_deliveries",
    "outbox_insert_statement",
    "outbox_new_object_statement",
    "outbox_record",
    "outbox_record_change",
    "outbox_record_new_object",
    "outbox_record_select",
    "outbox_relay_schedule",
    "outbox_relay_started",
    "psp_webhook_enqueue_processing",
    "webhook_deliveries_deliver",
    "webhook_deliveries_deliver_due",
    "webhook_deliveries_replay_failed",
    "webhook_delivery_replay",
    "webhook_endpoint_create",
    "webhook_endpoint_delete",
    "webhook_endpoint_roll_secret",
    "webhook_endpoint_update",
    "webhook_endpoints_disable_failing",
]
