"""The production-shaped stack the soak runs: its own PostgreSQL and Redis, gunicorn (several
workers, the psycopg pool), a Celery worker and beat under a restarting supervisor, and the PSP
simulator under gunicorn (one process: its memory is the PSP's record)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import subprocess
import sys
import time

import requests

from soak.config import ROOT, SoakConfig
from soak.procs import Postgres, Redis, StackError, Supervised, children, port_answers

DB_NAME = "soak"


class Stack:
    def __init__(self, config: SoakConfig, t0: float) -> None:
        self.config = config
        self.t0 = t0
        self.logs = config.workdir / "logs"
        self.postgres = Postgres(config.workdir / "pg", config.pg_port)
        self.redis = Redis(config.workdir / "redis", config.redis_port)
        self.simulator: subprocess.Popen | None = None
        self.web: Supervised | None = None
        self.worker: Supervised | None = None
        self.beat: Supervised | None = None
        self.api_url = f"http://127.0.0.1:{config.api_port}"
        self.sim_url = f"http://127.0.0.1:{config.sim_port}"
        self.env = self._env()

    # ------------------------------------------------------------------ environment
    def _env(self) -> dict[str, str]:
        config = self.config
        redis_url = f"redis://127.0.0.1:{config.redis_port}/0"
        env = {
            key: value
            for key, value in os.environ.items()
            # the caller's test isolation variables must not leak into the soak's stack
            if key not in {"TEST_REDIS_URL", "CELERY_BROKER_URL", "DB_POOL", "PYTEST_CURRENT_TEST"}
        }
        env.update(
            {
                "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}",
                "PYTHONUNBUFFERED": "1",
                "DJANGO_SETTINGS_MODULE": "payments_platform.settings.production",
                "DEBUG": "0",
                "SECURE_SSL_REDIRECT": "0",  # plain HTTP on 127.0.0.1, no TLS proxy in front
                # throwaway secrets: the soak's database is recreated every run
                "SECRET_KEY": "soak-" + secrets.token_urlsafe(48),
                "DATA_ENCRYPTION_KEYS": "soak1:" + base64.b64encode(os.urandom(32)).decode(),
                "DATA_ENCRYPTION_ACTIVE_KEY": "soak1",
                "FINGERPRINT_KEY": "soak-" + secrets.token_urlsafe(32),
                "DATABASE_URL": self.postgres.url(DB_NAME),
                "REDIS_URL": redis_url,
                "CELERY_BROKER_URL": redis_url,
                "API_BASE_URL": self.api_url,
                "API_BIND": f"127.0.0.1:{config.api_port}",
                "SIMULATOR_URL": self.sim_url,
                "MONEY_AUDIT_SIMULATOR_URL": self.sim_url,
                # the merchant's webhook receiver listens on 127.0.0.1 (test mode)
                "WEBHOOK_TEST_MODE_PRIVATE_TARGETS": "1",
                "LOG_LEVEL": "INFO",
                "PSP_SIMULATOR_LOG_LEVEL": "WARNING",
                "WEB_WORKERS": str(config.web_workers),
                "WEB_THREADS": str(config.web_threads),
                "DB_POOL_MIN": "2",
                "DB_POOL_MAX": str(config.web_threads),
            }
        )
        return env

    def python(self) -> str:
        venv = ROOT / ".venv" / "bin" / "python"
        return str(venv) if venv.exists() else sys.executable

    def manage(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        result = subprocess.run(
            [self.python(), "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise StackError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    # ------------------------------------------------------------------ lifecycle
    def prepare(self) -> None:
        for port, what in ((self.config.api_port, "API"), (self.config.sim_port, "simulator")):
            if port_answers(port):
                raise StackError(
                    f"port {port} ({what}) is in use: choose another (see docs/soak.md)"
                )
        self.logs.mkdir(parents=True, exist_ok=True)
        for old in self.logs.glob("*.log"):
            old.unlink()
        self.postgres.init()
        self.postgres.start()
        self.postgres.create_database(DB_NAME)
        self.redis.start()
        self.manage("migrate", "--no-input", "-v", "0")
        self.manage("bootstrap_roles", "-v", "0")
        self.manage("bootstrap_schedules", "-v", "0")

    def start(self) -> None:
        python = self.python()
        self.simulator = subprocess.Popen(
            [
                python,
                "-m",
                "gunicorn",
                "apps.psp_simulator.wsgi:app",
                "-b",
                f"127.0.0.1:{self.config.sim_port}",
                "-k",
                "gthread",
                "-w",
                "1",
                "--threads",
                "128",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=open(self.logs / "simulator.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.web = Supervised(
            "web",
            [python, "-m", "gunicorn", "payments_platform.wsgi", "-c", "gunicorn.conf.py"],
            {**self.env, "DB_POOL": "1"},
            self.logs / "web.log",
            self.t0,
        )
        # the worker keeps one persistent connection per process (DB_CONN_MAX_AGE), no pool
        self.worker = Supervised(
            "worker",
            [
                python,
                "-m",
                "celery",
                "-A",
                "payments_platform",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                str(self.config.worker_concurrency),
                "--queues",
                "celery",
                "--without-gossip",
                "--without-mingle",
            ],
            self.env,
            self.logs / "worker.log",
            self.t0,
        )
        self.beat = Supervised(
            "beat",
            [
                python,
                "-m",
                "celery",
                "-A",
                "payments_platform",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(self.config.workdir / "celerybeat-schedule"),
            ],
            self.env,
            self.logs / "beat.log",
            self.t0,
        )
        for process in (self.web, self.worker, self.beat):
            process.start()
        self.wait_http(f"{self.sim_url}/_sim/health", 30, "the PSP simulator")
        self.wait_http(f"{self.api_url}/readyz", 90, "gunicorn")
        self.wait_worker_ready(since=0, seconds=90)

    def wait_http(self, url: str, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise StackError(f"{what} did not answer at {url} within {seconds}s (logs: {self.logs})")

    def worker_log_ready_count(self) -> int:
        try:
            return (self.logs / "worker.log").read_text(errors="replace").count(" ready.")
        except OSError:
            return 0

    def wait_worker_ready(self, *, since: int, seconds: float) -> bool:
        """Until the worker's log says `ready.` once more than `since` times."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.worker_log_ready_count() > since:
                return True
            time.sleep(0.3)
        return False

    def web_workers(self) -> list[int]:
        return children(self.web.pid) if self.web and self.web.pid else []

    def stop(self) -> None:
        for process in (self.beat, self.worker, self.web):
            if process is not None:
                process.stop()
        if self.simulator is not None and self.simulator.poll() is None:
            self.simulator.terminate()
            try:
                self.simulator.wait(10)
            except subprocess.TimeoutExpired:
                self.simulator.kill()
        with contextlib.suppress(StackError):
            self.redis.stop()
        self.postgres.stop()

    def simulator_alive(self) -> bool:
        return self.simulator is not None and self.simulator.poll() is None

    def dump_env(self) -> str:
        shown = {k: v for k, v in self.env.items() if k.startswith(("DATABASE", "REDIS", "API_"))}
        return json.dumps(shown)
