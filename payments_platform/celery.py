import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "payments_platform.settings.base")

app = Celery("payments_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
