"""Looks for card numbers stored or logged in clear.

`find_pans_in_database` scans every text-like column (text, varchar, char, citext, json, jsonb,
bytea and arrays of those) of every table in the public schema with raw SQL, so a column added by
any app is covered without registering it. A hit is the PAN's digits in order, optionally split by
single spaces or dashes ("4242 4242 4242 4242"). Ciphertexts and hashes are not hits: that is the
point."""

from __future__ import annotations

import re

from django.db import connection

_TEXT_TYPES = {"text", "character varying", "character", "json", "jsonb"}
_TEXT_UDTS = {"citext"}
_ARRAY_UDTS = {"_text", "_varchar", "_bpchar", "_json", "_jsonb", "_citext"}


def pan_pattern(pans: set[str]) -> str:
    """One regex (valid for Python and PostgreSQL) matching any of the PANs, with optional single
    space or dash separators between digits."""
    return "|".join("[ -]?".join(pan) for pan in sorted(pans))


def find_pans_in_text(text: str, pans: set[str]) -> list[str]:
    """The PANs that occur in `text` (sorted)."""
    if not pans or not text:
        return []
    return sorted(pan for pan in pans if re.search(pan_pattern({pan}), text))


def _text_like_columns() -> list[tuple[str, str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.table_name, c.column_name, c.data_type, c.udt_name
            FROM information_schema.columns c
            JOIN information_schema.tables t
              ON t.table_schema = c.table_schema AND t.table_name = c.table_name
            WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
            ORDER BY c.table_name, c.ordinal_position
            """
        )
        rows = cursor.fetchall()
    columns = []
    for table, column, data_type, udt in rows:
        if data_type == "bytea":
            columns.append((table, column, "bytea"))
        elif data_type in _TEXT_TYPES or udt in _TEXT_UDTS or udt in _ARRAY_UDTS:
            columns.append((table, column, "text"))
    return columns


def find_pans_in_database(pans: set[str]) -> list[str]:
    """ "table.column" for every column of the public schema that holds one of the PANs in clear.

    Runs on the test's own connection, so it sees rows of the current (uncommitted) test
    transaction too."""
    if not pans:
        return []
    pattern = pan_pattern(pans)
    quote = connection.ops.quote_name
    hits = []
    with connection.cursor() as cursor:
        for table, column, kind in _text_like_columns():
            # bytea as escape text: ASCII bytes stay themselves (high and zero bytes become
            # \ooo), so a PAN written as bytes, e.g. inside a stored response body, still matches
            value = (
                f"encode({quote(column)}, 'escape')"
                if kind == "bytea"
                else f"{quote(column)}::text"
            )
            cursor.execute(
                f"SELECT 1 FROM {quote(table)} WHERE {value} ~ %s LIMIT 1",
                [pattern],
            )
            if cursor.fetchone():
                hits.append(f"{table}.{column}")
    return sorted(hits)
