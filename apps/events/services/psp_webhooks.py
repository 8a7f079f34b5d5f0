"""Inbound PSP webhooks: a stored notification handed to Celery for processing (receiving,
verifying, storing and dispatching it is `apps/events/inbound.py`)."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def psp_webhook_enqueue_processing(*, webhook_id: int, countdown: float | None = None) -> None:
    """Hands a stored PSP notification to Celery. No publish retries: the PSP gets its fast
    2xx either way, and a row the broker never got is picked up by the beat sweep."""
    from apps.events.tasks import process_psp_webhook

    try:
        process_psp_webhook.apply_async((webhook_id,), countdown=countdown, retry=False)
    except Exception:
        logger.warning("broker unavailable: psp webhook %s waits for the sweep", webhook_id)
