"""gunicorn for the API. Worker and thread counts come from the environment so `make bench`
and production can size them; the defaults suit a 2-core machine: 2 processes x 8 threads."""

import os

bind = os.environ.get("API_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "8"))
timeout = 60
graceful_timeout = 10
keepalive = 5
accesslog = os.environ.get("ACCESS_LOG", None)
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()


def post_worker_init(worker):
    # Django, DRF and the apps leave ~10^5 long-lived objects behind at import; a full garbage
    # collection walks all of them and pauses every thread of the worker for tens of ms, which
    # is what p99 latencies see. Freezing them after start-up takes them out of every future
    # collection.
    import gc

    _compile_lazy_regexes()
    gc.freeze()


def _compile_lazy_regexes():
    # Django compiles its validators' regexes on first use; the e-mail domain's (unicode
    # ranges) takes ~45 ms holding the GIL, and every thread that meets it before it is done
    # compiles its own copy: the first burst of card tokenizations after a worker (re)start
    # stalled the whole worker. Compiled here, before the worker takes requests.
    from django.core.validators import EmailValidator, URLValidator

    EmailValidator()("warm-up@example.com")
    URLValidator()("https://warm-up.example.com/")


def child_exit(server, worker):
    # Prometheus multiprocess mode: a dead worker's live gauges are dropped (its counters stay
    # in the merged totals, as they must)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
