"""Refreshing the dashboard rollups (apps/observability/models.py) from the source tables.

A refresh rewrites whole buckets: for each period (minute, hour; day from the hour rows) it
deletes the rollup rows of
the buckets in [since, until) and inserts them again with one INSERT … SELECT … GROUP BY over
the attempts (or ledger entries) started in those buckets, all in one transaction. So it is
idempotent, a late answer (an inquiry resolving an unknown outcome an hour later) is picked up
by the next refresh whose window covers it, and a dashboard never sees a half-written bucket.
The source scans use `observability_attempt_started` and `observability_ledger_txn_created`
(this app's migration 0002)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from apps.observability.models import AttemptRollup, LedgerRollup, RollupWatermark

# latency histogram bounds in ms (the last bucket is everything above)
LATENCY_BOUNDS_MS = (50, 100, 250, 500, 1000, 2500)
# how far back every minute's refresh reaches (answers that arrive later are taken by the
# nightly refresh of the last two days)
RECENT_WINDOW = timedelta(minutes=15)
# minute rows are kept this long; hour rows forever
MINUTE_RETENTION = timedelta(days=14)

_FAILED = "('soft_decline', 'hard_decline', 'error')"

_ATTEMPTS_SQL = f"""
INSERT INTO observability_attemptrollup (
    period, bucket, merchant_id, livemode, connector_id, psp, brand, currency, country,
    outcome, decline_code, first_attempt, failover_reason, attempts, amount, latency_sum_ms,
    latency_count, latency_buckets
)
SELECT %(period)s, date_trunc(%(period)s, a.started_at), i.merchant_id, i.livemode,
       a.connector_id, c.connector_type, coalesce(pm.brand, ''), a.currency,
       coalesce(pm.issuer_country, ''), a.outcome,
       CASE WHEN a.outcome IN ('soft_decline', 'hard_decline') THEN a.decline_code ELSE '' END,
       a.sequence = 1,
       CASE WHEN prev.id IS NULL THEN ''
            ELSE left(coalesce(nullif(prev.decline_code, ''), prev.outcome), 60) END,
       count(*), sum(a.amount), coalesce(sum(a.latency_ms), 0), count(a.latency_ms),
       jsonb_build_array(
           count(*) FILTER (WHERE a.latency_ms <= 50),
           count(*) FILTER (WHERE a.latency_ms > 50 AND a.latency_ms <= 100),
           count(*) FILTER (WHERE a.latency_ms > 100 AND a.latency_ms <= 250),
           count(*) FILTER (WHERE a.latency_ms > 250 AND a.latency_ms <= 500),
           count(*) FILTER (WHERE a.latency_ms > 500 AND a.latency_ms <= 1000),
           count(*) FILTER (WHERE a.latency_ms > 1000 AND a.latency_ms <= 2500),
           count(*) FILTER (WHERE a.latency_ms > 2500)
       )
FROM intents_paymentattempt a
JOIN intents_paymentintent i ON i.id = a.intent_id
JOIN routing_connector c ON c.id = a.connector_id
LEFT JOIN vault_paymentmethod pm ON pm.id = i.payment_method_id
LEFT JOIN intents_paymentattempt prev
       ON prev.intent_id = a.intent_id AND prev.sequence = a.sequence - 1
      AND prev.outcome IN {_FAILED}
      AND coalesce((a.routing_trace ->> 'confirm_attempt')::int, 1) > 1
WHERE a.started_at >= %(since)s AND a.started_at < %(until)s
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13
"""

_LEDGER_SQL = """
INSERT INTO observability_ledgerrollup (
    period, bucket, merchant_id, livemode, currency, kind, account_type, amount, entries,
    journals
)
SELECT %(period)s, date_trunc(%(period)s, t.created_at), t.merchant_id, t.livemode,
       t.currency, t.kind, split_part(acc.code, ':', 1), sum(e.amount), count(*),
       count(DISTINCT t.id)
FROM ledger_transaction t
JOIN ledger_entry e ON e.transaction_id = t.id AND e.phase = 'posted'
JOIN ledger_account acc ON acc.id = e.account_id
WHERE t.created_at >= %(since)s AND t.created_at < %(until)s
GROUP BY 1, 2, 3, 4, 5, 6, 7
"""


_ATTEMPT_COLUMNS = (
    "merchant_id, livemode, connector_id, psp, brand, currency, country, outcome, decline_code, "
    "first_attempt, failover_reason"
)
_ATTEMPT_DAYS_SQL = f"""
INSERT INTO observability_attemptrollup (
    period, bucket, {_ATTEMPT_COLUMNS}, attempts, amount, latency_sum_ms, latency_count,
    latency_buckets
)
SELECT 'day', date_trunc('day', bucket), {_ATTEMPT_COLUMNS}, SUM(attempts), SUM(amount),
       SUM(latency_sum_ms), SUM(latency_count),
       jsonb_build_array({", ".join(f"SUM((latency_buckets ->> {i})::bigint)" for i in range(7))})
FROM observability_attemptrollup
WHERE period = 'hour' AND bucket >= %(since)s AND bucket < %(until)s
GROUP BY date_trunc('day', bucket), {_ATTEMPT_COLUMNS}
"""
_LEDGER_COLUMNS = "merchant_id, livemode, currency, kind, account_type"
_LEDGER_DAYS_SQL = f"""
INSERT INTO observability_ledgerrollup (
    period, bucket, {_LEDGER_COLUMNS}, amount, entries, journals
)
SELECT 'day', date_trunc('day', bucket), {_LEDGER_COLUMNS}, SUM(amount), SUM(entries),
       SUM(journals)
FROM observability_ledgerrollup
WHERE period = 'hour' AND bucket >= %(since)s AND bucket < %(until)s
GROUP BY date_trunc('day', bucket), {_LEDGER_COLUMNS}
"""

_STEP = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


def _floor(moment: datetime, period: str) -> datetime:
    moment = moment.astimezone(UTC)
    if period == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(second=0, microsecond=0)


def rollups_refresh(*, since: datetime, until: datetime | None = None) -> dict[str, int]:
    """Rewrites every rollup bucket touching [since, until). Returns rows written per table."""
    until = until or timezone.now()
    written = {"attempts": 0, "ledger": 0}
    with transaction.atomic(), connection.cursor() as cursor:
        for period in ("minute", "hour"):
            # minute rows only within their retention
            floor = max(since, until - MINUTE_RETENTION) if period == "minute" else since
            start = _floor(floor, period)
            end = _floor(until, period) + _STEP[period]
            params = {"period": period, "since": start, "until": end}
            AttemptRollup.objects.filter(period=period, bucket__gte=start, bucket__lt=end).delete()
            cursor.execute(_ATTEMPTS_SQL, params)
            written["attempts"] += cursor.rowcount
            LedgerRollup.objects.filter(period=period, bucket__gte=start, bucket__lt=end).delete()
            cursor.execute(_LEDGER_SQL, params)
            written["ledger"] += cursor.rowcount
        # day rows from the hour rows just written (whole days)
        start, end = _floor(since, "day"), _floor(until, "day") + _STEP["day"]
        params = {"since": start, "until": end}
        AttemptRollup.objects.filter(period="day", bucket__gte=start, bucket__lt=end).delete()
        cursor.execute(_ATTEMPT_DAYS_SQL, params)
        written["attempts"] += cursor.rowcount
        LedgerRollup.objects.filter(period="day", bucket__gte=start, bucket__lt=end).delete()
        cursor.execute(_LEDGER_DAYS_SQL, params)
        written["ledger"] += cursor.rowcount
        RollupWatermark.objects.update_or_create(
            name="dashboards", defaults={"refreshed_until": until}
        )
    return written


def rollups_refresh_recent(*, now: datetime | None = None) -> dict[str, int]:
    """Beat, every minute: the recent window, from the last refresh's end (or 15 minutes)."""
    now = now or timezone.now()
    mark = (
        RollupWatermark.objects.filter(name="dashboards")
        .values_list("refreshed_until", flat=True)
        .first()
    )
    since = min(mark, now - RECENT_WINDOW) if mark else now - RECENT_WINDOW
    # a platform down for a day catches up at most a day per run (the nightly refresh and
    # `manage.py refresh_rollups` cover more)
    since = max(since, now - timedelta(days=1))
    written = rollups_refresh(since=since, until=now)
    AttemptRollup.objects.filter(period="minute", bucket__lt=now - MINUTE_RETENTION).delete()
    LedgerRollup.objects.filter(period="minute", bucket__lt=now - MINUTE_RETENTION).delete()
    return written
