"""Hand-written SQL for the checkout plane's hottest step, where the ORM's round trips and CPU
are most of its cost. Columns and values come from the models' own fields
(apps/intents/statement_values.py), so a field added to a model is written here as by the ORM."""

from __future__ import annotations

from functools import lru_cache

from django.db import connection

from apps.intents.models import IntentStatus, PaymentAttempt, PaymentIntent
from apps.intents.statement_values import column_values


@lru_cache(maxsize=8)
def _fail_over_sql(result_fields: tuple[str, ...], event_sql: str):
    quote = connection.ops.quote_name
    attempts = quote(PaymentAttempt._meta.db_table)
    intents = quote(PaymentIntent._meta.db_table)
    updated = tuple(PaymentAttempt._meta.get_field(name) for name in result_fields)
    inserted = tuple(f for f in PaymentAttempt._meta.concrete_fields if not f.primary_key)
    sql = f"""
WITH pending AS MATERIALIZED (
    SELECT id FROM {attempts}
    WHERE id = %s AND outcome = %s
    FOR UPDATE
), processing AS MATERIALIZED (
    SELECT id, status, pending_operation, last_payment_error, next_action FROM {intents}
    WHERE id = %s AND EXISTS (SELECT FROM pending)
    FOR UPDATE
), failed AS (
    UPDATE {attempts} SET {", ".join(f"{quote(f.column)} = %s" for f in updated)}
    WHERE id = (SELECT id FROM pending)
      AND EXISTS (
        SELECT FROM processing
        WHERE status = %s AND pending_operation = %s
          AND last_payment_error IS NULL AND next_action IS NULL
      )
    RETURNING id
), event AS ({event_sql})
INSERT INTO {attempts} ({", ".join(quote(f.column) for f in inserted)})
SELECT {", ".join(["%s"] * len(inserted))} FROM failed
RETURNING id"""
    return sql, updated, inserted


def fail_over(
    *,
    failed: PaymentAttempt,
    result_fields: tuple[str, ...],
    event: tuple[str, list],
    next_attempt: PaymentAttempt,
) -> int | None:
    """One statement: lock `failed` if still pending, then its intent (the order of the general
    path: attempt, then intent); if the intent is still processing this authorization with
    nothing else set, write `failed`'s `result_fields`, insert the outbox row `event` (an
    `outbox_insert_statement` over the relation `failed`) and `next_attempt`. Returns the new
    attempt's id, or None when a condition did not hold and nothing was written.

    The intent is locked by its primary key alone and its state checked after the lock: with
    the state in the lock's WHERE, the planner may pick the status index and scan every
    processing intent."""
    event_sql, event_params = event
    sql, updated, inserted = _fail_over_sql(result_fields, event_sql)
    params = [
        failed.pk,
        PaymentAttempt.Outcome.PENDING,
        failed.intent_id,
        *column_values(failed, updated, add=False),
        IntentStatus.PROCESSING,
        PaymentIntent.PendingOperation.AUTHORIZE,
        *event_params,
        *column_values(next_attempt, inserted, add=True),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row else None
