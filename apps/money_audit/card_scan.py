"""Finds card numbers (PANs) stored or logged in clear, without knowing which cards were used.

A hit is a Luhn-valid number of 13 to 19 digits that starts like a card (2-6: Mastercard 2-series,
Amex, Visa, Mastercard, Discover, …), written as one run of digits or in the usual groups
(4-4-4-4[-3], Amex 4-6-5, Diners 4-6-4, separated by one space or dash), and not glued to other
letters or digits: a run of digits inside a hex digest, a base62 id or a longer number is not a
card number. Hits are reported masked (first six, last four), never in full.

Scanned: every text-like column (text, varchar wide enough for 13 digits, char, json, jsonb,
bytea) of every table in the public schema, so a column added by any app is covered, except
ciphertext columns (bytea named `*encrypted*`: AES-GCM output is random bytes; the vault's
`encrypted_number` is one), and any log files given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from django.db import connection

MIN_DIGITS, MAX_DIGITS = 13, 19
# PostgreSQL prefilter (ARE): only rows matching it are read into Python for the exact test
_SQL_PREFILTER = r"[2-6][0-9]{3}([ -]?[0-9]){9,15}"
_EDGE_START, _EDGE_END = r"(?<![0-9A-Za-z])", r"(?![0-9A-Za-z])"
_CANDIDATES = [
    # one run of digits
    re.compile(_EDGE_START + r"[2-6][0-9]{12,18}" + _EDGE_END),
    # 4-4-4-4 with up to three more digits, one kind of separator
    re.compile(
        _EDGE_START
        + r"[2-6][0-9]{3}([ -])[0-9]{4}\1[0-9]{4}\1[0-9]{4}(?:\1[0-9]{1,3})?"
        + _EDGE_END
    ),
    # 4-6-5 (Amex) and 4-6-4 (Diners)
    re.compile(_EDGE_START + r"[2-6][0-9]{3}([ -])[0-9]{6}\1[0-9]{4,5}" + _EDGE_END),
]
_TEXT_TYPES = {"text", "character varying", "character", "json", "jsonb"}
_TEXT_ARRAYS = {"_text", "_varchar", "_bpchar", "_json", "_jsonb", "_citext"}
MAX_HITS = 1000


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def mask(digits: str) -> str:
    return f"{digits[:6]}…{digits[-4:]}"


def card_numbers_in(text: str) -> list[str]:
    """The card numbers in `text`, masked, in order of appearance."""
    found: list[tuple[int, str]] = []
    for pattern in _CANDIDATES:
        for match in pattern.finditer(text):
            groups = re.split(r"[ -]", match.group(0))
            # a grouped number followed by a short group: the card may be the first four
            for parts in (groups, groups[:4]) if len(groups) == 5 else (groups,):
                digits = "".join(parts)
                if MIN_DIGITS <= len(digits) <= MAX_DIGITS and luhn_valid(digits):
                    found.append((match.start(), mask(digits)))
                    break
    return [masked for _, masked in sorted(found)]


@dataclass(frozen=True)
class CardNumberHit:
    where: str  # "table.column id=42" or "path:line"
    masked: str

    def __str__(self) -> str:
        return f"{self.where} ({self.masked})"


def _columns() -> list[tuple[str, str, str, bool]]:
    """(table, column, kind, table has an `id` column) for every column worth scanning."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.table_name, c.column_name, c.data_type, c.udt_name,
                   c.character_maximum_length,
                   EXISTS (SELECT 1 FROM information_schema.columns i
                           WHERE i.table_schema = c.table_schema
                             AND i.table_name = c.table_name AND i.column_name = 'id')
            FROM information_schema.columns c
            JOIN information_schema.tables t
              ON t.table_schema = c.table_schema AND t.table_name = c.table_name
            WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
            ORDER BY c.table_name, c.ordinal_position
            """
        )
        rows = cursor.fetchall()
    columns = []
    for table, column, data_type, udt, max_length, has_id in rows:
        if data_type == "bytea":
            if "encrypted" not in column:
                columns.append((table, column, "bytea", has_id))
        elif data_type in _TEXT_TYPES or udt == "citext" or udt in _TEXT_ARRAYS:
            if max_length is not None and max_length < MIN_DIGITS:
                continue  # status, currency, …: too short to hold a card number
            columns.append((table, column, "text", has_id))
    return columns


def scan_database(*, limit: int = MAX_HITS) -> tuple[list[CardNumberHit], int]:
    """Card numbers in the database's text columns: (hits, columns scanned)."""
    quote = connection.ops.quote_name
    hits: list[CardNumberHit] = []
    columns = _columns()
    with connection.cursor() as cursor:
        for table, column, kind, has_id in columns:
            name = quote(column)
            value = f"encode({name}, 'escape')" if kind == "bytea" else f"{name}::text"
            key = f"{quote('id')}::text" if has_id else "ctid::text"
            cursor.execute(
                f"SELECT {key}, {value} FROM {quote(table)} WHERE {value} ~ %s LIMIT %s",
                [_SQL_PREFILTER, limit],
            )
            for row_key, text in cursor.fetchall():
                for masked in card_numbers_in(text or ""):
                    label = "id" if has_id else "ctid"
                    hits.append(CardNumberHit(f"{table}.{column} {label}={row_key}", masked))
                    if len(hits) >= limit:
                        return hits, len(columns)
    return hits, len(columns)


def scan_files(paths: Iterable[Path], *, limit: int = MAX_HITS) -> tuple[list[CardNumberHit], int]:
    """Card numbers in log files, line by line: (hits, lines read). Missing files are skipped."""
    hits: list[CardNumberHit] = []
    lines = 0
    for path in paths:
        try:
            handle = open(path, "rb")  # noqa: SIM115
        except OSError:
            continue
        with handle:
            for number, raw in enumerate(handle, start=1):
                lines += 1
                for masked in card_numbers_in(raw.decode("utf-8", "replace")):
                    hits.append(CardNumberHit(f"{path}:{number}", masked))
                    if len(hits) >= limit:
                        return hits, lines
    return hits, lines
