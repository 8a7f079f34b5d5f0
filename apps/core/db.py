"""Database connection handling the checkout path needs beyond Django's defaults."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections

# psycopg caches how it parses a query's %s placeholders only for queries of at most 50
# parameters (psycopg/_queries.py, against ORM-built bulk inserts of varying sizes). The checkout
# path's single statements (apps/intents/*_statement.py) are few, fixed and take about 100:
# unparsed each time, tx A's cost 0.3-0.6 ms of CPU per payment. The length cap (4096
# characters), which keeps varying bulk inserts out, stays; the cache itself is an LRU of 128.
QUERY_CACHE_MAX_PARAMS = 256


def cache_query_parsing() -> None:
    """At start-up (CoreConfig.ready)."""
    from psycopg import _queries

    if (
        getattr(_queries, "MAX_CACHED_STATEMENT_PARAMS", QUERY_CACHE_MAX_PARAMS)
        < QUERY_CACHE_MAX_PARAMS
    ):
        _queries.MAX_CACHED_STATEMENT_PARAMS = QUERY_CACHE_MAX_PARAMS


def release_pooled_connection(alias: str = DEFAULT_DB_ALIAS) -> bool:
    """Gives this thread's connection back to the pool before a slow wait (a PSP call), so the
    pool is sized by CPU and not by PSP latency: 64 payments waiting 200 ms on a PSP no longer
    hold 64 connections. Django takes a connection from the pool again at the next query.

    Only with the psycopg pool (DB_POOL=1) and only outside a transaction: a connection in an
    atomic block (the caller's transaction, or a test's) keeps its state and is never released.
    Without a pool, closing would cost a new backend per request, so nothing happens. Returns
    whether the connection was released."""
    connection = connections[alias]
    if connection.connection is None or connection.in_atomic_block:
        return False
    if not getattr(connection, "pool", None):
        return False
    connection.close()
    return True
