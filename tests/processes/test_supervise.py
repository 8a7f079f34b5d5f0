"""scripts/supervise.py, which `make run` wraps around every Procfile process: a command that
exits is started again; SIGTERM or SIGINT stops the supervisor and everything it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUPERVISE = ROOT / "scripts" / "supervise.py"

pytestmark = pytest.mark.slow

# Writes "PID CHILD_PID" (the command and a subprocess of its own, like a gunicorn worker) to
# the file, then sleeps; exits at once on its first run if CRASH_FIRST exists (and removes it).
COMMAND = """
import os, subprocess, sys, time
record, crash_first = sys.argv[1], sys.argv[2]
sub = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(record, "a") as f:
    f.write(f"{os.getpid()} {sub.pid}\\n")
if os.path.exists(crash_first):
    os.remove(crash_first)
    sys.exit(3)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) is not running
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _runs(record: Path, count: int, timeout: float = 15) -> list[tuple[int, int]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if record.exists():
            runs = [tuple(map(int, line.split())) for line in record.read_text().splitlines()]
            if len(runs) >= count:
                return runs
        time.sleep(0.05)
    pytest.fail(f"fewer than {count} runs recorded within {timeout}s")


def _wait_gone(pids, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive(pid) for pid in pids):
            return
        time.sleep(0.05)
    pytest.fail(f"still running: {[pid for pid in pids if _alive(pid)]}")


def _supervise(tmp_path, *options):
    record, crash_first = tmp_path / "runs.txt", tmp_path / "crash-first"
    crash_first.touch()
    process = subprocess.Popen(
        [sys.executable, str(SUPERVISE), "--name", "probe", "--max-backoff", "1", *options,
         "--", sys.executable, "-c", COMMAND, str(record), str(crash_first)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return process, record


def test_a_command_that_exits_is_restarted_and_sigterm_stops_everything(tmp_path):
    supervisor, record = _supervise(tmp_path)
    try:
        # the first run exits with status 3: it is started again, and what it left behind
        # (its own subprocess) is gone
        (first, first_sub), (second, second_sub) = _runs(record, 2)
        assert second != first
        _wait_gone([first, first_sub])
        assert _alive(second) and _alive(second_sub)

        # killed from outside (kill -9, as a crash): started again, leftovers killed
        os.kill(second, signal.SIGKILL)
        third, third_sub = _runs(record, 3)[2]
        _wait_gone([second, second_sub])
        assert _alive(third) and _alive(third_sub) and supervisor.poll() is None

        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(10) == 0
        _wait_gone([third, third_sub])
        time.sleep(1.5)  # longer than the backoff: nothing is started after the stop
        assert len(_runs(record, 3)) == 3
        log = supervisor.stderr.read()
        assert "exited with status 3" in log and "killed by SIGKILL" in log
    finally:
        if supervisor.poll() is None:
            supervisor.kill()


def test_sigint_stops_the_supervisor_and_the_command(tmp_path):
    supervisor, record = _supervise(tmp_path)
    try:
        _, (pid, sub) = _runs(record, 2)
        supervisor.send_signal(signal.SIGINT)
        assert supervisor.wait(10) == 0
        _wait_gone([pid, sub])
    finally:
        if supervisor.poll() is None:
            supervisor.kill()


IGNORES_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"


def test_a_command_that_ignores_sigterm_is_killed_after_the_stop_timeout(tmp_path):
    pid_file = tmp_path / "pid"
    supervisor = subprocess.Popen(
        [sys.executable, str(SUPERVISE), "--stop-timeout", "1", "--", "sh", "-c",
         f"echo $$ > {pid_file}; exec {sys.executable} -c '{IGNORES_TERM}'"],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not (pid_file.exists() and pid_file.read_text().strip()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        pid = int(pid_file.read_text())
        time.sleep(0.3)  # the command has installed its handler
        started = time.monotonic()
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(10)
        assert time.monotonic() - started < 5  # under honcho's 5 s before it kills everything
        _wait_gone([pid])
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
