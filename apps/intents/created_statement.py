"""tx A of create+confirm in one statement: the intent (already moved to processing in memory,
by the same code as the general path), its first attempt, their outbox rows and audit rows.
One statement needs no BEGIN and COMMIT: in autocommit it is a transaction by itself, so the
create+confirm's writes before the PSP call cost one round trip. Columns and values come from
the models' own fields (`column_values`), so a field added to a model is written here as by
the ORM."""

from __future__ import annotations

from functools import lru_cache

from django.db import connection

from apps.intents.models import PaymentAttempt, PaymentIntent
from apps.intents.statement_values import column_values


@lru_cache(maxsize=8)
def _sql(events_sql: str, audit_sql: str):
    quote = connection.ops.quote_name
    intent_fields = tuple(f for f in PaymentIntent._meta.concrete_fields if not f.primary_key)
    attempt_fields = tuple(
        f for f in PaymentAttempt._meta.concrete_fields if not f.primary_key and f.name != "intent"
    )

    def columns(fields):
        return ", ".join(quote(f.column) for f in fields)

    sql = f"""
WITH created AS (
    INSERT INTO {quote(PaymentIntent._meta.db_table)} ({columns(intent_fields)})
    VALUES ({", ".join(["%s"] * len(intent_fields))})
    RETURNING id
), attempt AS (
    INSERT INTO {quote(PaymentAttempt._meta.db_table)}
        ({quote(PaymentAttempt._meta.get_field("intent").column)}, {columns(attempt_fields)})
    SELECT created.id, {", ".join(["%s"] * len(attempt_fields))} FROM created
    RETURNING id
), events AS ({events_sql}), audit AS ({audit_sql})
SELECT (SELECT id FROM created), (SELECT id FROM attempt)"""
    return sql, intent_fields, attempt_fields


def insert_created(
    *,
    intent: PaymentIntent,
    attempt: PaymentAttempt,
    events: tuple[str, list],
    audit: tuple[str, list],
) -> None:
    """One statement: insert `intent` and `attempt` (as they are in memory) with the outbox
    rows `events` and the audit rows `audit`, each a statement over the relation `created`.
    Both objects are saved afterwards, as if by the ORM."""
    events_sql, events_params = events
    audit_sql, audit_params = audit
    sql, intent_fields, attempt_fields = _sql(events_sql, audit_sql)
    params = [
        # created_at as the object holds it (add=False): the created event carries it
        *column_values(intent, intent_fields, add=False),
        *column_values(attempt, attempt_fields, add=True),
        *events_params,
        *audit_params,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        intent.pk, attempt.pk = cursor.fetchone()
    attempt.intent = intent  # its id, now that there is one
    for obj in (intent, attempt):
        obj._state.adding = False
        obj._state.db = connection.alias
    intent._update_initial_state()  # saved: django-fsm's optimistic check starts from here
