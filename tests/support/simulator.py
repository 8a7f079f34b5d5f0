"""Run the real PSP simulator in a subprocess for tests.

`start_simulator()` runs the stdlib server on a free port; `start_simulator(server="gunicorn")`
runs the production shape. Both return `(base_url, stop)`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
LISTENING = "PSP simulator listening on "


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_simulator(
    port: int = 0,
    *,
    server: str = "stdlib",
    startup_timeout: float = 20.0,
    log_level: str = "WARNING",
) -> tuple[str, Callable[[], None]]:
    """Start `python -m apps.psp_simulator`, wait until /_sim/health answers, return its URL
    and a function that stops it. `port=0` lets the OS choose (gunicorn gets a free port)."""
    if server == "gunicorn" and port == 0:
        port = free_port()
    log_dir = Path(tempfile.mkdtemp(prefix="psp-sim-"))
    stdout_path, stderr_path = log_dir / "stdout.log", log_dir / "stderr.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "apps.psp_simulator",
                "--port",
                str(port),
                "--server",
                server,
                "--log-level",
                log_level,
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )

    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def logs() -> str:
        return f"stdout:\n{stdout_path.read_text()}\nstderr:\n{stderr_path.read_text()}"

    deadline = time.monotonic() + startup_timeout
    base_url = ""
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the simulator exited with {process.returncode}\n{logs()}")
            if not base_url:
                for line in stdout_path.read_text().splitlines():
                    if line.startswith(LISTENING):
                        base_url = line[len(LISTENING) :].strip()
            if base_url:
                try:
                    if requests.get(f"{base_url}/_sim/health", timeout=1).status_code == 200:
                        return base_url, stop
                except requests.RequestException:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"the simulator did not become healthy in {startup_timeout}s\n{logs()}")
    except BaseException:
        stop()
        raise
