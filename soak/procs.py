"""The soak's own PostgreSQL and Redis (it restarts and stops them, so never the machine's), and
a minimal supervisor that restarts a platform process whenever it exits, as systemd's
`Restart=always` would in production."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg


class StackError(Exception):
    """The stack could not be brought up or controlled: a harness failure, not a finding."""


def port_answers(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(port: int, what: str, seconds: float = 30.0, *, up: bool = True) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_answers(port) == up:
            return
        time.sleep(0.2)
    raise StackError(
        f"{what} did not {'come up' if up else 'go down'} on port {port} in {seconds}s"
    )


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if not candidates:
        raise StackError(
            f"{name} not found: install the PostgreSQL server (apt-get install postgresql)"
        )
    return candidates[0]


def _as_postgres(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root: use the distribution's postgres account then
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


class Postgres:
    """A throwaway cluster under `root` on `port` (trust auth on 127.0.0.1, user postgres)."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.data = root / "data"
        self.port = port
        self.log = root / "postgresql.log"
        self.restarts = 0

    def url(self, dbname: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def _pg_ctl(self, *args: str, check: bool = True, timeout: float = 120) -> None:
        cmd = _as_postgres([_binary("pg_ctl"), "-D", str(self.data), *args])
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise StackError(f"pg_ctl {' '.join(args)}: {result.stderr.strip() or result.stdout}")

    def init(self) -> None:
        if port_answers(self.port):
            raise StackError(f"port {self.port} is in use: set SOAK_PG_PORT to a free port")
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        result = subprocess.run(
            _as_postgres(
                [
                    _binary("initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                ]
            ),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise StackError(f"initdb: {result.stderr.strip()}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c max_connections=300 -c shared_buffers=128MB"
        )
        self._pg_ctl("-l", str(self.log), "-w", "-t", "60", "start", "-o", options)
        wait_port(self.port, "PostgreSQL")

    def restart(self) -> None:
        """A clean restart (`pg_ctl restart -m fast`): every connection is cut."""
        # -l: the new postmaster must not inherit our pipes (pg_ctl would never return)
        self._pg_ctl("-l", str(self.log), "-w", "-t", "60", "-m", "fast", "restart")
        self.restarts += 1
        wait_port(self.port, "PostgreSQL")

    def stop(self) -> None:
        if self.data.exists():
            self._pg_ctl("-w", "-t", "60", "-m", "fast", "stop", check=False)

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')

    def terminate_backends(self, dbname: str) -> int:
        """pg_terminate_backend on every other session of `dbname`: how many were cut."""
        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [dbname],
            ).fetchall()
        return sum(1 for (done,) in rows if done)


class Redis:
    """redis-server on `port`, with AOF (as production keeps it), stopped and started at will."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.process: subprocess.Popen | None = None
        self.log = root / "redis.log"

    def start(self) -> None:
        server = shutil.which("redis-server")
        if not server:
            raise StackError("redis-server not found: install Redis (apt-get install redis-server)")
        if self.process is None and port_answers(self.port):
            raise StackError(f"port {self.port} is in use: set SOAK_REDIS_PORT to a free port")
        self.root.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                server,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.root),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--daemonize",
                "no",
                "--logfile",
                str(self.log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_port(self.port, "Redis")

    def stop(self) -> None:
        """SIGTERM: Redis flushes its AOF and exits, as `systemctl stop redis` does."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
        wait_port(self.port, "Redis", up=False)


def children(pid: int) -> list[int]:
    """Direct children of a process (Linux /proc)."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found.extend(int(p) for p in handle.read().split())
    except OSError:
        return []
    return found


@dataclass
class Exit:
    at: float  # seconds since the soak started
    returncode: int | None
    expected: bool  # we killed it


@dataclass
class Supervised:
    """A platform process restarted whenever it exits (1 s later). Exits we did not cause are
    kept: they are findings (a process that dies on a Redis restart, for instance)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    t0: float
    process: subprocess.Popen | None = None
    exits: list[Exit] = field(default_factory=list)
    starts: int = 0
    _stopping: bool = False
    _expect_exit: bool = False
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name=f"supervise-{self.name}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while self.process is None and time.monotonic() < deadline:
            time.sleep(0.05)

    def _loop(self) -> None:
        with open(self.log_path, "ab") as log:
            while not self._stopping:
                with self._lock:
                    if self._stopping:
                        break
                    self.process = subprocess.Popen(
                        self.argv,
                        env=self.env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                    self.starts += 1
                returncode = self.process.wait()
                if self._stopping:
                    break
                with self._lock:
                    expected, self._expect_exit = self._expect_exit, False
                self.exits.append(Exit(time.monotonic() - self.t0, returncode, expected))
                log.write(
                    f"\n[soak supervisor] {self.name} exited ({returncode}); restarting\n".encode()
                )
                log.flush()
                time.sleep(1.0)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def kill_tree(self) -> int | None:
        """kill -9 of the process and everything it started (its process group)."""
        with self._lock:
            process = self.process
            if process is None or process.poll() is not None:
                return None
            self._expect_exit = True
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                return None
            return process.pid

    def unexpected_exits(self) -> list[Exit]:
        return [e for e in self.exits if not e.expected]

    def stop(self) -> None:
        self._stopping = True
        with self._lock:
            process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
