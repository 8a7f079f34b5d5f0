"""Who applies a PSP notification: the app that owns the object it is about.

`events` receives, verifies, stores and de-duplicates inbound notifications
(apps.events.inbound); it knows nothing of payments, refunds, disputes or payouts. The apps that
own those objects register a handler per normalized event type (`WebhookEvent.event_type`:
authorization, capture, cancellation, refund, and later chargeback, payout) in their
AppConfig.ready, and events dispatches each parsed event to it.

A handler returns a `NotificationOutcome` (applied | ignored | conflict, with the reason and the
changes, kept on the inbound row for the admin), or raises `NotificationNotApplicableYet` when
the object is not in a state it can be applied to yet (the synchronous PSP answer is not stored,
say): events retries it with backoff, then dead-letters it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from apps.psp_adapters.contract import WebhookEvent


class NotificationNotApplicableYet(Exception):
    """The object the notification is about is not in a state it can be applied to yet."""


@dataclass
class NotificationOutcome:
    result: str  # applied | ignored | conflict
    reason: str
    object: str = ""
    changes: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "result": self.result,
            "reason": self.reason,
            "object": self.object,
            "changes": self.changes,
        }


Handler = Callable[[int, WebhookEvent], NotificationOutcome]
_handlers: dict[str, Handler] = {}


def notification_handler_register(event_type: str, handler: Handler) -> None:
    """`handler(connector_id, event)` applies every event of this type. One owner per type."""
    current = _handlers.get(event_type)
    if current is not None and current is not handler:
        raise RuntimeError(f"a handler for {event_type!r} notifications is already registered")
    _handlers[event_type] = handler


def notification_dispatch(*, connector_id: int, event: WebhookEvent) -> NotificationOutcome:
    handler = _handlers.get(event.event_type)
    if handler is None:
        return NotificationOutcome(
            "ignored",
            f"{event.event_type} notifications are recorded, not applied",
            event.psp_reference,
        )
    return handler(connector_id, event)
