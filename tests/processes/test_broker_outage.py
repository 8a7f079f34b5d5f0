"""A real Celery worker rides out a Redis restart: it stays up, reconnects, acknowledges the task
that was running when Redis went away, and runs what is published afterwards.

Before the fix (celery 5.7.0 / kombu 5.7.0 with kombu's own Redis transport) the worker died
within a second of losing Redis while a task was in flight: "Unrecoverable error:
AttributeError("'NoneType' object has no attribute 'hostname'")" (payments_platform/celery.py,
RedisChannel, says why)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from payments_platform.celery import app
from tests.support.redis_server import LocalRedis

ROOT = Path(__file__).resolve().parents[2]
OUTAGE_S = 5

pytestmark = pytest.mark.slow


def _publish(broker_url: str, *args, timeout: float = 10) -> None:
    # a fresh connection each time: right after the restart the first attempts may be refused
    deadline = time.monotonic() + timeout
    while True:
        try:
            with app.connection_for_write(broker_url) as connection:
                app.send_task("tests.probe.record", args=args, connection=connection, retry=False)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _wait_for_line(path: Path, line: str, worker, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and line in path.read_text().splitlines():
            return
        if worker.poll() is not None:
            pytest.fail(f"worker exited ({worker.returncode}) waiting for {line!r}:\n{_tail(log)}")
        time.sleep(0.1)
    pytest.fail(f"{line!r} not recorded within {timeout}s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def test_worker_survives_a_redis_restart_with_a_task_in_flight(tmp_path):
    broker = LocalRedis(tmp_path / "redis").start()
    record = tmp_path / "record.txt"
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "payments_platform.settings.test",
        "TEST_REDIS_URL": broker.url,
    }
    # the worker as the Procfile runs it (prefork pool, gossip, mingle, heartbeats), plus the
    # probe tasks
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "payments_platform", "worker",
             "--loglevel", "INFO", "--concurrency", "2", "--queues", "celery",
             "--include", "tests.support.probe_tasks"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _publish(broker.url, str(record), "before")
        _wait_for_line(record, "done before", worker, log, timeout=40)

        # a task is running (its message delivered, not yet acknowledged) when Redis goes away
        _publish(broker.url, str(record), "in-flight", 2 * OUTAGE_S)
        _wait_for_line(record, "start in-flight", worker, log, timeout=10)
        broker.stop()
        deadline = time.monotonic() + OUTAGE_S
        while time.monotonic() < deadline:
            assert worker.poll() is None, f"worker died while Redis was down:\n{_tail(log)}"
            time.sleep(0.2)
        broker.start()

        _publish(broker.url, str(record), "after")
        _wait_for_line(record, "done after", worker, log, timeout=40)
        _wait_for_line(record, "done in-flight", worker, log, timeout=20)
        assert worker.poll() is None

        # the in-flight task was acknowledged over the new connection: its message is not left
        # in the unacked set to be run a second time when the visibility timeout expires
        client = redis.Redis.from_url(broker.url)
        deadline = time.monotonic() + 10
        while client.hlen("unacked") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.hlen("unacked") == 0, _tail(log)
        client.close()
        lines = record.read_text().splitlines()
        assert lines.count("start in-flight") == 1
        assert lines.count("done after") == 1
    finally:
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        broker.stop()
