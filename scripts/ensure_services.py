"""Finds PostgreSQL and Redis, or starts project-local ones, and creates the database.

Order: whatever answers at DATABASE_URL / REDIS_URL (default 127.0.0.1:5432 and :6379);
otherwise, when the server binaries are installed, a project-local instance under .local/;
otherwise a clear message saying what is missing (exit 2).

    python scripts/ensure_services.py [--record-started FILE]
    python scripts/ensure_services.py --stop [--only-listed FILE]

--record-started appends the name of each server it started ("postgresql", "redis") to FILE;
--stop stops the project-local servers under .local/ (only those named in FILE with
--only-listed). `make run` uses both, so Ctrl-C also stops the servers that run started.

The project-local Redis keeps an append-only file (.local/redis/appendonlydir, fsync every
second) so a restart loses at most the last second of queued tasks, CVCs in transit and
breaker state.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"


def answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(host: str, port: int, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if answers(host, port):
            return
        time.sleep(0.3)
    sys.exit(f"error: {what} did not come up on {host}:{port} within {seconds:.0f}s")


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def as_postgres_user(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; use the distribution's postgres account when we are root
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def ensure_postgres(url: str, started: list[str]) -> None:
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 5432
    if answers(host, port):
        print(f"postgresql: using the server at {host}:{port}")
    else:
        initdb, pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
        if not (initdb and pg_ctl):
            sys.exit(
                f"error: no PostgreSQL answers at {host}:{port} and no server binaries "
                "(initdb, pg_ctl) are installed.\n  Install PostgreSQL 15 "
                "(apt-get install postgresql) or set DATABASE_URL to a reachable server."
            )
        data = LOCAL / "pg" / "data"
        data.parent.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(data.parent, "postgres")
        if not (data / "PG_VERSION").exists():
            print(f"postgresql: initializing a project-local cluster in {data}")
            subprocess.run(
                as_postgres_user(
                    [
                        initdb,
                        "-D",
                        str(data),
                        "-U",
                        parsed.username or "postgres",
                        "--auth=trust",
                        "-E",
                        "UTF8",
                    ]
                ),
                check=True,
                stdout=subprocess.DEVNULL,
            )
        print(f"postgresql: starting a project-local server on {host}:{port}")
        subprocess.run(
            as_postgres_user(
                [
                    pg_ctl,
                    "-D",
                    str(data),
                    "-l",
                    str(data.parent / "postgresql.log"),
                    "-w",
                    "start",
                    "-o",
                    f"-p {port} -c listen_addresses={host} -k {data.parent}",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wait_for(host, port, "PostgreSQL")
        started.append("postgresql")
    create_database(url)


def create_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    dbname = parsed.path.lstrip("/") or "payments_platform"
    admin_url = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{dbname}"')
            print(f"postgresql: created database {dbname}")


def ensure_redis(url: str, started: list[str]) -> None:
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    if answers(host, port):
        print(f"redis: using the server at {host}:{port}")
        return
    server = shutil.which("redis-server")
    if not server:
        sys.exit(
            f"error: no Redis answers at {host}:{port} and redis-server is not installed.\n"
            "  Install Redis 7 (apt-get install redis-server) or set REDIS_URL."
        )
    data = LOCAL / "redis"
    data.mkdir(parents=True, exist_ok=True)
    print(f"redis: starting a project-local server on {host}:{port}")
    subprocess.run(
        [
            server,
            "--port",
            str(port),
            "--bind",
            host,
            "--daemonize",
            "yes",
            "--dir",
            str(data),
            # queued Celery tasks survive a restart: an append-only file, fsynced every second
            # (no RDB snapshots on top of it)
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--logfile",
            str(data / "redis.log"),
            "--pidfile",
            str(data / "redis.pid"),
        ],
        check=True,
    )
    wait_for(host, port, "Redis")
    started.append("redis")


def say(message: str) -> None:
    # on the way out (`make run` after Ctrl-C) stdout may be a pipe whose reader is gone: the
    # servers must still be stopped
    with contextlib.suppress(OSError):
        print(message, flush=True)


def stop_postgres() -> None:
    data = LOCAL / "pg" / "data"
    pg_ctl = find_binary("pg_ctl")
    if not (pg_ctl and (data / "postmaster.pid").exists()):
        return
    say(f"postgresql: stopping the project-local server in {data}")
    subprocess.run(
        as_postgres_user([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]),
        check=False,
        stdout=subprocess.DEVNULL,
    )


def stop_redis(seconds: float = 30) -> None:
    pidfile = LOCAL / "redis" / "redis.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    say(f"redis: stopping the project-local server (pid {pid})")
    try:
        os.kill(pid, signal.SIGTERM)  # Redis flushes its append-only file and exits
    except ProcessLookupError:
        pidfile.unlink(missing_ok=True)
        return
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    say(f"redis: pid {pid} still running after {seconds:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--record-started", metavar="FILE", type=Path)
    parser.add_argument("--stop", action="store_true")
    parser.add_argument("--only-listed", metavar="FILE", type=Path)
    args = parser.parse_args()
    if args.stop:
        names = {"postgresql", "redis"}
        if args.only_listed:
            listed = args.only_listed.read_text() if args.only_listed.exists() else ""
            names &= set(listed.split())
        if "redis" in names:
            stop_redis()
        if "postgresql" in names:
            stop_postgres()
        return
    database_url = os.environ.get(
        "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/payments_platform"
    )
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    started: list[str] = []
    try:
        ensure_postgres(database_url, started)
        ensure_redis(redis_url, started)
    finally:
        if args.record_started and started:
            with args.record_started.open("a") as f:
                f.write("".join(f"{name}\n" for name in started))


if __name__ == "__main__":
    main()
