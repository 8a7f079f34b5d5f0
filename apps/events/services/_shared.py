"""Private helpers the events service modules share."""

from __future__ import annotations

from apps.events.models import WebhookEndpoint


def _lock_endpoint(endpoint_id: int) -> WebhookEndpoint:
    return WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
