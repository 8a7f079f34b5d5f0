import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_process_shutdown
from kombu.transport import redis as kombu_redis

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


@worker_process_shutdown.connect
def _mark_metrics_process_dead(pid=None, **kwargs) -> None:
    # Prometheus multiprocess mode (issue 17): a prefork child that exits leaves its counters in
    # the merged totals and its live gauges out
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


class RedisChannel(kombu_redis.Channel):
    """kombu's Redis channel, keeping the broker address it was opened with.

    Why (celery 5.7.0 + kombu 5.7.0, the newest releases): when the worker loses Redis,
    `Consumer.on_connection_error_after_connected` first calls `Connection.collect()`, which
    detaches the transport (`transport.client = None`), and then, since celery PR #10242
    (celery/celery#10242, for celery/celery#9705), `connection.close()` on the same
    connection. That second close reaches this channel's `close()` again; with a task in
    flight (acks_late: an unacknowledged message) it restores the unacked messages, which builds
    a new Redis pool from `transport.client.hostname` -> AttributeError("'NoneType' object has
    no attribute 'hostname'"), an error that is neither a connection nor a channel error, so the
    worker stops with "Unrecoverable error". The same lookup breaks the late ack of a task that
    finishes after the reconnect. The same failure in older kombu: celery/kombu#582, #970.

    With the address kept, the restore and the late ack reach Redis if it is back, or fail
    with a redis ConnectionError, which kombu and celery handle (the message then stays in
    the unacked set and is redelivered after the visibility timeout)."""

    def __init__(self, connection, *args, **kwargs):
        self._broker_client = connection.client  # the kombu Connection: hostname, port, ...
        super().__init__(connection, *args, **kwargs)

    def _connparams(self, asynchronous=False):
        transport = self.connection
        if transport.client is not None or self._broker_client is None:
            return super()._connparams(asynchronous=asynchronous)
        # the transport was detached by Connection.collect(): nothing else uses it any more
        transport.client = self._broker_client
        try:
            return super()._connparams(asynchronous=asynchronous)
        finally:
            transport.client = None


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport with `RedisChannel`; selected by CELERY_BROKER_TRANSPORT for
    redis:// and rediss:// broker URLs."""

    Channel = RedisChannel
