from celery import shared_task

from apps.core.idempotency import idempotency_purge_expired


@shared_task(name="core.purge_expired_idempotency_records")
def purge_expired_idempotency_records() -> int:
    return idempotency_purge_expired()
