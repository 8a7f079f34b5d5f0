from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from apps.observability import rollups


@shared_task(name="observability.refresh_rollups")
def refresh_rollups() -> dict:
    return rollups.rollups_refresh_recent()


@shared_task(name="observability.refresh_rollups_nightly")
def refresh_rollups_nightly() -> dict:
    now = timezone.now()
    return rollups.rollups_refresh(since=now - timedelta(days=2), until=now)
