"""tx B of an approved authorization, the checkout plane's most frequent write, in one
statement: lock the attempt (still pending) and then its intent (still authorizing, in a state
the transition may start from), record the attempt's result, move the intent to its new state
and write the outbox row. The values are the in-memory objects' after the same code as the
ORM path ran on them (apps/intents/services/confirm.py): this module only writes them.

Which states the intent may leave is not written here: it is read from the django-fsm
transition (`allowed_from`), the one definition of the state machine."""

from __future__ import annotations

from functools import lru_cache

from django.db import connection

from apps.intents.models import PaymentAttempt, PaymentIntent
from apps.intents.statement_values import column_values

# what the approval changes on the intent (confirm.py: _authorize_in_memory), and the columns
# the ORM would write for them
INTENT_FIELDS = (
    "status",
    "connector",
    "psp_reference",
    "pending_operation",
    "next_action",
    "authorized_at",
    "amount_received",
    "amount_capturable",
    "updated_at",
)


def allowed_from(transition) -> tuple[str, ...]:
    """The states a django-fsm transition method may start from."""
    sources = tuple(sorted(transition._django_fsm.transitions))
    if any(source in ("*", "+") for source in sources):
        raise ValueError("a transition from any state has no list of states to check")
    return sources


@lru_cache(maxsize=16)
def _sql(attempt_fields: tuple[str, ...], written_sqls: tuple[str, ...]):
    quote = connection.ops.quote_name
    attempts = quote(PaymentAttempt._meta.db_table)
    intents = quote(PaymentIntent._meta.db_table)
    recorded = tuple(PaymentAttempt._meta.get_field(name) for name in attempt_fields)
    changed = tuple(PaymentIntent._meta.get_field(name) for name in INTENT_FIELDS)

    def assignments(fields):
        return ", ".join(f"{quote(f.column)} = %s" for f in fields)

    sql = f"""
WITH pending AS MATERIALIZED (
    SELECT id FROM {attempts}
    WHERE id = %s AND outcome = %s
    FOR UPDATE
), locked AS MATERIALIZED (
    SELECT id, status, pending_operation FROM {intents}
    WHERE id = %s AND EXISTS (SELECT FROM pending)
    FOR UPDATE
), authorized AS (
    UPDATE {intents} SET {assignments(changed)}
    WHERE id = (SELECT id FROM locked WHERE status = ANY(%s) AND pending_operation = %s)
    RETURNING id
), recorded AS (
    UPDATE {attempts} SET {assignments(recorded)}
    WHERE id = (SELECT id FROM pending) AND EXISTS (SELECT FROM authorized)
    RETURNING id
){"".join(f", written_{i} AS ({sql})" for i, sql in enumerate(written_sqls))}
SELECT EXISTS (SELECT FROM authorized), EXISTS (SELECT FROM recorded)"""
    return sql, recorded, changed


def apply_authorized(
    *,
    attempt: PaymentAttempt,
    attempt_fields: tuple[str, ...],
    intent: PaymentIntent,
    allowed: tuple[str, ...],
    written_with: list[tuple[str, list]],
) -> bool:
    """One statement: lock `attempt` if still pending, then `intent` (the order of every path
    that locks both); if the intent's status is one of `allowed` and it is still authorizing,
    write `intent`'s INTENT_FIELDS, `attempt`'s `attempt_fields` and `written_with`, the other
    apps' rows that go with it (the outbox row, the CVC's discard, the idempotent result), each
    a data-modifying statement over the relation `authorized`. False when a condition did not
    hold and nothing was written."""
    sql, recorded, changed = _sql(attempt_fields, tuple(sql for sql, _ in written_with))
    params = [
        attempt.pk,
        PaymentAttempt.Outcome.PENDING,
        intent.pk,
        *column_values(intent, changed, add=False),
        list(allowed),
        PaymentIntent.PendingOperation.AUTHORIZE,
        *column_values(attempt, recorded, add=False),
        *(param for _, params in written_with for param in params),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        authorized, recorded_ = cursor.fetchone()
    return authorized and recorded_
