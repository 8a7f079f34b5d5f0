"""Tasks that only the process tests use: loaded into a test worker with
`celery worker --include tests.support.probe_tasks`, published by name."""

from __future__ import annotations

import time

from payments_platform.celery import app


@app.task(name="tests.probe.record")
def record(path: str, label: str, seconds: float = 0.0) -> None:
    """Appends "start LABEL", sleeps, appends "done LABEL"."""
    with open(path, "a") as f:
        f.write(f"start {label}\n")
    time.sleep(seconds)
    with open(path, "a") as f:
        f.write(f"done {label}\n")
