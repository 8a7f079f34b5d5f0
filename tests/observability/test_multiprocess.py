"""Multiprocess mode: what two processes count is one total on the page (gunicorn workers and
Celery children each write their own files under PROMETHEUS_MULTIPROC_DIR)."""

from __future__ import annotations

import os
import subprocess
import sys

COUNT = """
from apps.core import metrics
metrics.payment_finished(livemode=False, psp="stripe", status="succeeded")
metrics.psp_call_observed(psp="stripe", operation="authorize", outcome="approved", seconds=0.02)
"""

READ = """
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
registry = CollectorRegistry()
multiprocess.MultiProcessCollector(registry)
print(generate_latest(registry).decode())
"""


def test_two_processes_count_into_one_total(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", COUNT], env=env, check=True, timeout=30)
    page = subprocess.run(
        [sys.executable, "-c", READ],
        env=env,
        check=True,
        timeout=30,
        capture_output=True,
        text=True,
    ).stdout
    assert (
        'pp_payments_total{decline_code="none",mode="test",psp="stripe",status="succeeded"} 2.0'
        in page
    )
    assert 'pp_psp_request_duration_seconds_count{operation="authorize",psp="stripe"} 2.0' in page
