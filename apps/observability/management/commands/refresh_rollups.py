from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from apps.observability.rollups import rollups_refresh


class Command(BaseCommand):
    help = "Rebuild the dashboard rollups over the last N days (default 2)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=float, default=2.0)

    def handle(self, *args, days: float, **options):
        now = timezone.now()
        written = rollups_refresh(since=now - timedelta(days=days), until=now)
        self.stdout.write(f"rollups rewritten: {written}")
