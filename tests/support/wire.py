"""Counts what the test process sends to PostgreSQL, at the psycopg level: every statement
(Django's queries, savepoints and the ledger's own prepared statements alike) and every
transaction (the BEGIN psycopg sends before the first statement of one, and its COMMIT or
ROLLBACK). Round trips, not time: a count does not flake on a busy machine."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import psycopg
from psycopg.pq import TransactionStatus


@dataclass
class WireCount:
    statements: list[str] = field(default_factory=list)
    begins: int = 0
    commits: int = 0
    rollbacks: int = 0
    # writes sent in autocommit: each is a transaction of its own, without BEGIN and COMMIT
    autocommit_writes: int = 0

    @property
    def round_trips(self) -> int:
        """Statements plus the transaction-control commands psycopg sends on its own."""
        return len(self.statements) + self.begins + self.commits + self.rollbacks

    @property
    def transactions(self) -> int:
        """Explicit transactions (BEGIN … COMMIT) and single writes in autocommit."""
        return self.begins + self.autocommit_writes


def _writes(query) -> bool:
    text = (query if isinstance(query, str) else repr(query)).lstrip().upper()
    return text.startswith(("INSERT", "UPDATE", "DELETE")) or (
        text.startswith("WITH") and any(f" {verb} " in text for verb in ("INSERT", "UPDATE"))
    )


class count_wire:  # lower case: read as a with-block verb
    """Counts the calling thread's traffic while the block runs (other threads are ignored)."""

    def __enter__(self) -> WireCount:
        self.count = WireCount()
        self._thread = threading.get_ident()
        self._saved = {
            (psycopg.Cursor, "execute"): psycopg.Cursor.execute,
            (psycopg.Cursor, "executemany"): psycopg.Cursor.executemany,
            (psycopg.Connection, "commit"): psycopg.Connection.commit,
            (psycopg.Connection, "rollback"): psycopg.Connection.rollback,
        }
        count, mine = self.count, self._thread

        def statement(original):
            def wrapper(cursor, query, *args, **kwargs):
                if threading.get_ident() == mine:
                    conn = cursor.connection
                    if (
                        not conn.autocommit
                        and conn.info.transaction_status == TransactionStatus.IDLE
                    ):
                        count.begins += 1  # psycopg sends BEGIN before this statement
                    elif conn.autocommit and _writes(query):
                        count.autocommit_writes += 1
                    count.statements.append(query if isinstance(query, str) else repr(query))
                return original(cursor, query, *args, **kwargs)

            return wrapper

        def control(original, attribute):
            def wrapper(conn, *args, **kwargs):
                sends = conn.info.transaction_status != TransactionStatus.IDLE
                if threading.get_ident() == mine and sends:
                    setattr(count, attribute, getattr(count, attribute) + 1)
                return original(conn, *args, **kwargs)

            return wrapper

        psycopg.Cursor.execute = statement(self._saved[(psycopg.Cursor, "execute")])
        psycopg.Cursor.executemany = statement(self._saved[(psycopg.Cursor, "executemany")])
        psycopg.Connection.commit = control(self._saved[(psycopg.Connection, "commit")], "commits")
        psycopg.Connection.rollback = control(
            self._saved[(psycopg.Connection, "rollback")], "rollbacks"
        )
        return self.count

    def __exit__(self, *exc) -> None:
        for (owner, name), original in self._saved.items():
            setattr(owner, name, original)
