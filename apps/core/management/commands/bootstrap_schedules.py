from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask


class Command(BaseCommand):
    help = "Create the platform's periodic tasks in django-celery-beat (never overwrites edits)."

    @transaction.atomic
    def handle(self, *args, **options):
        created = 0
        for name, spec in settings.PLATFORM_BEAT_SCHEDULES.items():
            if PeriodicTask.objects.filter(name=name).exists():
                continue
            if "every" in spec:
                interval, _ = IntervalSchedule.objects.get_or_create(
                    every=spec["every"], period=IntervalSchedule.SECONDS
                )
                PeriodicTask.objects.create(name=name, task=spec["task"], interval=interval)
            else:
                minute, hour, dom, month, dow = spec["crontab"].split()
                crontab, _ = CrontabSchedule.objects.get_or_create(
                    minute=minute,
                    hour=hour,
                    day_of_month=dom,
                    month_of_year=month,
                    day_of_week=dow,
                    timezone=spec.get("timezone", "UTC"),
                )
                PeriodicTask.objects.create(name=name, task=spec["task"], crontab=crontab)
            created += 1
        if options["verbosity"]:
            self.stdout.write(f"bootstrap_schedules: {created} created")
