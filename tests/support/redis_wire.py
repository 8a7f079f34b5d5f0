"""Counts what the test process sends to Redis, at redis-py's socket level: one round trip per
`Connection.send_packed_command`, which is one command, one pipeline (every command queued on it,
MULTI/EXEC included) or one command of a connection's handshake. An EVALSHA that finds no script,
its SCRIPT LOAD and the EVALSHA again are three; a retry after a connection error is one more.
Every client goes through it: ours (apps.core.redis_client), Django's cache and kombu's broker
connections. Round trips, not time: a count does not flake on a busy machine (tests/support/wire.py
is the PostgreSQL side)."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from redis.connection import AbstractConnection

_PROJECT = Path(__file__).resolve().parents[2]
_OURS = tuple(str(_PROJECT / part) + "/" for part in ("apps", "payments_platform"))
# helpers that send on a caller's behalf: the caller is the origin
_HELPERS = (str(_PROJECT / "apps" / "core" / "redis_client.py"),)


@dataclass(frozen=True)
class RoundTrip:
    commands: tuple[str, ...]  # what went out, e.g. ("EVALSHA",) or ("MGET",) or ("GET", "MGET")
    origin: str  # the innermost frame of the project's own code that sent it: file:function
    db: int  # the Redis database: the broker may live elsewhere than the checkout's keys

    def __str__(self) -> str:
        sent = " + ".join(self.commands)
        return f"{sent:<36} db{self.db}  {self.origin}"


@dataclass
class RedisWireCount:
    round_trips: list[RoundTrip] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.round_trips)

    def listing(self) -> str:
        return "\n".join(f"  {i + 1:2}. {trip}" for i, trip in enumerate(self.round_trips))


def command_names(packed) -> tuple[str, ...]:
    """The command names in a packed RESP request (one or several arrays of bulk strings); the
    arguments are never kept (a CVC travels in one)."""
    data = packed.encode() if isinstance(packed, str) else b"".join(bytes(p) for p in packed)
    names, at = [], 0
    while at < len(data) and data[at : at + 1] == b"*":
        end = data.index(b"\r\n", at)
        count, at = int(data[at + 1 : end]), end + 2
        words = []
        for _ in range(count):
            end = data.index(b"\r\n", at)
            size = int(data[at + 1 : end])
            words.append(data[end + 2 : end + 2 + size])
            at = end + 2 + size + 2
        name = words[0].decode(errors="replace").upper() if words else "?"
        if name in ("CLIENT", "SCRIPT", "CONFIG") and len(words) > 1:
            name += " " + words[1].decode(errors="replace").upper()
        names.append(name)
    return tuple(names)


def _origin() -> str:
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(_OURS) and filename not in _HELPERS:
            return f"{Path(filename).relative_to(_PROJECT)}:{frame.f_code.co_name}"
        frame = frame.f_back
    return "?"


class count_redis:  # lower case: read as a with-block verb
    """Counts the calling thread's Redis round trips while the block runs (other threads, such
    as a simulator's or a live server's, are ignored)."""

    def __enter__(self) -> RedisWireCount:
        self.count = RedisWireCount()
        self._saved = AbstractConnection.send_packed_command
        count, mine, original = self.count, threading.get_ident(), self._saved

        def send_packed_command(connection, command, check_health=True):
            if threading.get_ident() == mine:
                trip = RoundTrip(command_names(command), _origin(), int(connection.db or 0))
                count.round_trips.append(trip)
            return original(connection, command, check_health)

        AbstractConnection.send_packed_command = send_packed_command
        return self.count

    def __exit__(self, *exc) -> None:
        AbstractConnection.send_packed_command = self._saved
