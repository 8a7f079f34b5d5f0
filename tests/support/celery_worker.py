"""A real Celery worker in a subprocess, pointed at the test database and the test Redis.

Tests that rely on it must be transactional (`django_db(transaction=True)`) so the worker sees
committed rows."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return (
        f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )


@contextmanager
def running_worker(*, concurrency: int = 2, queues: str = "celery", extra_env=None):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "payments_platform.settings.test",
        "DATABASE_URL": _database_url(),
        "TEST_REDIS_URL": settings.REDIS_URL,
        # the same platform simulator as the test (the connectors' allowed simulator endpoint)
        "TEST_SIMULATOR_URL": settings.SIMULATOR_URL,
        **(extra_env or {}),
    }
    (ROOT / ".local").mkdir(exist_ok=True)  # ignored by git: absent on a fresh clone
    log = open(ROOT / ".local" / "test-celery-worker.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "payments_platform",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            str(concurrency),
            "--queues",
            queues,
            "--pool",
            "threads",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _wait_ready(process, timeout: float = 30) -> None:
    from payments_platform.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("celery worker exited early; see .local/test-celery-worker.log")
        try:
            if app.control.ping(timeout=0.5):
                return
        except Exception:  # broker not answering yet
            pass
        time.sleep(0.2)
    raise RuntimeError("celery worker did not answer a ping within the timeout")
