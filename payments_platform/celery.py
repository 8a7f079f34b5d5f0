import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "payments_platform.settings.base")

app = Celery("payments_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _recycle_database_connections(**kwargs) -> None:
    # Celery's Django fixup would close the connection around every task (CELERY_DB_REUSE_MAX
    # turns that off); Django's own rule applies instead: keep it for CONN_MAX_AGE seconds,
    # drop it when a health check or an error says it is unusable.
    task = kwargs.get("task")
    if task is not None and task.request.is_eager:
        return
    from django.db import close_old_connections

    close_old_connections()
