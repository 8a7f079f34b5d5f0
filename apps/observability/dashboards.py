"""The dashboards' server-side queries, over the rollups only (never the payment tables), scoped
to the staff user's merchants. Each function returns plain data the template renders and the
charts read (through `json_script`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.apps import apps
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from apps.core.money import currency_exponent
from apps.observability.rollups import LATENCY_BOUNDS_MS

GRANULARITIES = ("minute", "hour", "day")
RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
# minute points over more than two days would be thousands of points: refused, hour instead
MINUTE_MAX_RANGE = timedelta(days=2)
# the card schemes' dispute monitoring programmes (count AND ratio over a calendar month)
DISPUTE_THRESHOLDS = (
    ("Visa VDMP early warning", 0.0065, 75),
    ("Visa VDMP standard", 0.009, 100),
    ("Mastercard ECM", 0.015, 100),
    ("Mastercard HECM", 0.03, 300),
)


@dataclass(frozen=True)
class Query:
    start: datetime
    end: datetime
    granularity: str
    livemode: bool
    merchant_ids: frozenset[int] | None  # None: every merchant
    range_key: str = "24h"
    note: str = ""

    @property
    def period(self) -> str:
        # the rollup rows at the chosen granularity: minute, hour or day
        return self.granularity

    def scope_sql(self, alias: str = "r") -> tuple[str, list]:
        sql = (
            f"{alias}.period = %s AND {alias}.livemode = %s "
            f"AND {alias}.bucket >= %s AND {alias}.bucket < %s"
        )
        params: list = [self.period, self.livemode, self.start, self.end]
        if self.merchant_ids is not None:
            sql += f" AND {alias}.merchant_id = ANY(%s)"
            params.append(list(self.merchant_ids) or [-1])
        return sql, params

    def coarse_scope_sql(self, alias: str = "r") -> tuple[str, list]:
        """The same rows as `scope_sql`, read from the coarsest rollup that covers each part
        of the range: whole days from the day rows, whole hours from the hour rows, the rest at
        the granularity (for the tables without a time axis: 24 times fewer rows per day)."""
        parts, params = [], [self.livemode]
        for period, start, end in _pieces(self.start, self.end, self.period):
            parts.append(f"({alias}.period = %s AND {alias}.bucket >= %s AND {alias}.bucket < %s)")
            params += [period, start, end]
        sql = f"{alias}.livemode = %s AND ({' OR '.join(parts) or 'false'})"
        if self.merchant_ids is not None:
            sql += f" AND {alias}.merchant_id = ANY(%s)"
            params.append(list(self.merchant_ids) or [-1])
        return sql, params


_ORDER = ("day", "hour", "minute")
_STEPS = {"day": timedelta(days=1), "hour": timedelta(hours=1), "minute": timedelta(minutes=1)}


def _floor(moment: datetime, period: str) -> datetime:
    moment = moment.astimezone(UTC)
    if period == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(second=0, microsecond=0)


def _ceil(moment: datetime, period: str) -> datetime:
    floor = _floor(moment, period)
    return floor if floor == moment else floor + _STEPS[period]


def _pieces(start: datetime, end: datetime, finest: str) -> list[tuple[str, datetime, datetime]]:
    levels = _ORDER[: _ORDER.index(finest) + 1]
    result: list[tuple[str, datetime, datetime]] = []

    def split(lo: datetime, hi: datetime, level: int) -> None:
        if lo >= hi:
            return
        period = levels[level]
        if level == len(levels) - 1:
            result.append((period, lo, hi))
            return
        inner_lo, inner_hi = _ceil(lo, period), _floor(hi, period)
        if inner_hi > inner_lo:
            result.append((period, inner_lo, inner_hi))
            split(lo, inner_lo, level + 1)
            split(inner_hi, hi, level + 1)
        else:
            split(lo, hi, level + 1)

    split(start, end, 0)
    return result


def query_from_params(params, *, merchant_ids, now: datetime | None = None) -> Query:
    """From the page's GET parameters: `range` (1h, 24h, 7d, 30d, 90d), `granularity` (minute,
    hour, day), `mode` (test, live), `merchant` (an id inside the user's scope). Anything
    unknown falls back to the default, with a note on the page."""
    now = now or timezone.now()
    notes = []
    range_key = params.get("range") or "24h"
    if range_key not in RANGES:
        notes.append(f"Unknown range {range_key!r}: showing 24h.")
        range_key = "24h"
    span = RANGES[range_key]
    granularity = params.get("granularity") or (
        "minute" if span <= timedelta(hours=6) else "hour" if span <= timedelta(days=7) else "day"
    )
    if granularity not in GRANULARITIES:
        notes.append(f"Unknown granularity {granularity!r}: showing hour.")
        granularity = "hour"
    if granularity == "minute" and span > MINUTE_MAX_RANGE:
        notes.append("Minute granularity is available over two days at most: showing hour.")
        granularity = "hour"
    livemode = params.get("mode") == "live"
    scope = None if merchant_ids is None else frozenset(merchant_ids)
    merchant = params.get("merchant")
    if merchant:
        try:
            wanted = int(merchant)
        except ValueError:
            wanted = None
        if wanted is not None and (scope is None or wanted in scope):
            scope = frozenset({wanted})
        else:
            notes.append("That merchant is not in your scope.")
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - span
    if granularity == "day":  # whole days: the first day from its midnight
        start = start.replace(hour=0, minute=0)
    elif granularity == "hour":
        start = start.replace(minute=0)
    return Query(
        start=start,
        end=end,
        granularity=granularity,
        livemode=livemode,
        merchant_ids=scope,
        range_key=range_key,
        note=" ".join(notes),
    )


def _rows(sql: str, params: list) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _rate(numerator, denominator) -> float | None:
    return round(100.0 * numerator / denominator, 2) if denominator else None


# --------------------------------------------------------------------------- ops


_TOTALS_SQL = """
    SUM(attempts) AS attempts,
    SUM(attempts) FILTER (WHERE outcome = 'approved') AS approved,
    SUM(attempts) FILTER (WHERE first_attempt) AS intents,
    SUM(attempts) FILTER (WHERE first_attempt AND outcome = 'approved') AS first_approved,
    SUM(attempts) FILTER (WHERE failover_reason = '') AS attempts_no_failover,
    SUM(attempts) FILTER (WHERE failover_reason = '' AND outcome = 'approved')
        AS approved_no_failover,
    SUM(latency_sum_ms) AS latency_total, SUM(latency_count) AS latency_n,
""" + ", ".join(
    f"SUM((latency_buckets ->> {i})::bigint) AS b{i}" for i in range(len(LATENCY_BOUNDS_MS) + 1)
)

# one scan of the rollup rows for every table of the page (GROUPING SETS), not one per table
_GROUPS = {
    "connector": "(connector_id, psp)",
    "card brand": "(brand)",
    "currency": "(currency)",
    "country": "(country)",
    "declines": "(decline_code, outcome)",
    "failovers": "(failover_reason, psp)",
}


def ops_dashboard(q: Query) -> dict:
    where, params = q.scope_sql()
    series = _rows(
        f"SELECT bucket AS t, {_TOTALS_SQL} FROM observability_attemptrollup r WHERE {where} "
        "GROUP BY bucket ORDER BY bucket",
        params,
    )
    where, params = q.coarse_scope_sql()
    rows = _rows(
        "SELECT connector_id, psp, brand, currency, country, decline_code, "
        "outcome, failover_reason, GROUPING(connector_id) AS g_connector, "
        "GROUPING(brand) AS g_brand, GROUPING(currency) AS g_currency, "
        "GROUPING(country) AS g_country, GROUPING(decline_code) AS g_decline, "
        "GROUPING(failover_reason) AS g_failover, "
        f"{_TOTALS_SQL} FROM observability_attemptrollup r WHERE {where} "
        f"GROUP BY GROUPING SETS ({', '.join(_GROUPS.values())})",
        params,
    )
    declines, failovers = [], []
    dimensions: dict[str, list] = {"connector": [], "card brand": [], "currency": [], "country": []}
    for row in rows:
        if not row["g_connector"]:
            dimensions["connector"].append({**row, "key": row["connector_id"]})
        elif not row["g_brand"]:
            dimensions["card brand"].append({**row, "key": row["brand"]})
        elif not row["g_currency"]:
            dimensions["currency"].append({**row, "key": row["currency"]})
        elif not row["g_country"]:
            dimensions["country"].append({**row, "key": row["country"]})
        elif not row["g_decline"]:
            if row["outcome"] in ("soft_decline", "hard_decline"):
                declines.append(
                    {
                        "decline_code": row["decline_code"],
                        "outcome": row["outcome"],
                        "n": row["attempts"],
                    }
                )
        elif not row["g_failover"] and row["failover_reason"]:
            failovers.append(
                {
                    "reason": row["failover_reason"],
                    "psp": row["psp"],
                    "n": row["attempts"],
                    "rescued": row["approved"],
                }
            )
    declines.sort(key=lambda r: -r["n"])
    failovers.sort(key=lambda r: -r["n"])
    names = _connector_names({row["key"] for row in dimensions["connector"]})
    latency = []
    for row in sorted(dimensions["connector"], key=lambda r: r["key"]):
        buckets = [int(row[f"b{i}"] or 0) for i in range(len(LATENCY_BOUNDS_MS) + 1)]
        latency.append(
            {
                "connector": names.get(row["key"], str(row["key"])),
                "psp": row["psp"],
                "calls": row["latency_n"],
                "mean_ms": round(row["latency_total"] / row["latency_n"])
                if row["latency_n"]
                else None,
                "p50_ms": _percentile(buckets, 0.5),
                "p95_ms": _percentile(buckets, 0.95),
            }
        )
    for name, dim_rows in dimensions.items():
        dim_rows.sort(key=lambda r: -(r["attempts"] or 0))
        if name == "connector":
            for row in dim_rows:
                row["key"] = names.get(row["key"], str(row["key"]))
    for dim_rows in (series, *dimensions.values()):
        for row in dim_rows:
            _add_rates(row)
    keys = (
        "attempts",
        "approved",
        "intents",
        "first_approved",
        "attempts_no_failover",
        "approved_no_failover",
    )
    return {
        "series": [
            {
                k: row[k]
                for k in (
                    "t",
                    *keys,
                    "intent_rate",
                    "attempt_rate",
                    "first_attempt_rate",
                    "attempt_rate_no_retries",
                )
            }
            for row in series
        ],
        "dimensions": dimensions,
        "declines": declines[:15],
        "failovers": failovers[:15],
        "latency": latency,
        "breakers": _breaker_history(q),
        "webhooks": _webhook_health(q),
        "totals": _add_rates({key: sum(row[key] or 0 for row in series) for key in keys}),
    }


def _add_rates(row: dict) -> dict:
    row["intent_rate"] = _rate(row["approved"] or 0, row["intents"] or 0)
    row["attempt_rate"] = _rate(row["approved"] or 0, row["attempts"] or 0)
    row["first_attempt_rate"] = _rate(row["first_approved"] or 0, row["intents"] or 0)
    row["attempt_rate_no_retries"] = _rate(
        row["approved_no_failover"] or 0, row["attempts_no_failover"] or 0
    )
    return row


def _percentile(buckets: list[int], fraction: float) -> int | None:
    total = sum(buckets)
    if not total:
        return None
    running = 0
    for bound, count in zip((*LATENCY_BOUNDS_MS, None), buckets, strict=True):
        running += count
        if running >= fraction * total:
            return bound if bound is not None else LATENCY_BOUNDS_MS[-1] * 2
    return None


def _connector_names(ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    Connector = apps.get_model("connectors", "Connector")
    return {
        pk: f"{name} ({kind})"
        for pk, name, kind in Connector.objects.filter(pk__in=ids).values_list(
            "pk", "name", "connector_type"
        )
    }


_HEALTH_ACTIONS = (
    "connector.breaker_open",
    "connector.breaker_half-open",
    "connector.breaker_closed",
    "connector.breaker_forced",
    "connector.auto_disabled",
    "connector.auto_enabled",
)


def _breaker_history(q: Query) -> list[dict]:
    """Every automatic breaker transition, forced breaker and automatic switch of a connector
    in the range, from the audit log (kept as long as the audit log is, not a five-minute
    window)."""
    AuditLogEntry = apps.get_model("core", "AuditLogEntry")
    rows = AuditLogEntry.objects.filter(
        object_type="connector",
        action__in=_HEALTH_ACTIONS,
        created_at__gte=q.start,
        created_at__lt=q.end,
    )
    if q.merchant_ids is not None:
        rows = rows.filter(merchant_id__in=q.merchant_ids)
    rows = list(rows.order_by("-id").values("created_at", "action", "object_id", "changes")[:50])
    Connector = apps.get_model("connectors", "Connector")
    names = dict(
        Connector.objects.filter(public_id__in={r["object_id"] for r in rows}).values_list(
            "public_id", "name"
        )
    )
    for row in rows:
        row["connector"] = names.get(row["object_id"], row["object_id"])
        row["event"] = row["action"].removeprefix("connector.").replace("_", " ")
        row["change"] = "; ".join(
            f"{field}: {values[0]} → {values[1]}"
            for field, values in (row["changes"] or {}).items()
            if isinstance(values, list | tuple) and len(values) == 2
        )
    return rows


def _webhook_health(q: Query) -> list[dict]:
    Delivery = apps.get_model("events", "WebhookDelivery")
    deliveries = Delivery.objects.filter(livemode=q.livemode)
    if q.merchant_ids is not None:
        deliveries = deliveries.filter(merchant_id__in=q.merchant_ids)
    counts = defaultdict(int)
    for status in ("pending", "dead"):
        counts[status] = deliveries.filter(status=status).count()
    recent = deliveries.filter(last_attempt_at__gte=q.start, last_attempt_at__lt=q.end)
    counts["succeeded in range"] = recent.filter(status="succeeded").count()
    return [{"state": key, "n": value} for key, value in counts.items()]


# --------------------------------------------------------------------------- finance


def finance_dashboard(q: Query) -> dict:
    where, params = q.scope_sql()
    series = _rows(
        "SELECT date_trunc(%s, bucket) AS t, currency, "
        # gross: the receivable (net of the PSP's fee) plus that fee, both debits of a capture
        "SUM(amount) FILTER (WHERE kind = 'capture' "
        "AND account_type IN ('psp_receivable', 'psp_fees')) AS volume, "
        # net revenue: fees charged to merchants (credited to platform_fee_revenue, the PSP's
        # fee passed through included) less the PSP fees the platform pays (an expense)
        "-SUM(amount) FILTER (WHERE account_type IN ('platform_fee_revenue', 'psp_fees')) "
        "AS revenue, "
        "SUM(amount) FILTER (WHERE account_type = 'psp_fees') AS fees, "
        "-SUM(amount) FILTER (WHERE kind = 'refund' AND account_type = 'psp_receivable') "
        "AS refunds, "
        # what the PSPs withdrew for disputes (amounts and fees) net of what they reinstated
        "-SUM(amount) FILTER (WHERE kind IN ('chargeback', 'chargeback_reversal') "
        "AND account_type = 'psp_receivable') AS disputes, "
        "SUM(amount) FILTER (WHERE kind = 'payout' AND account_type = 'payouts_in_transit') "
        "AS payouts, "
        # what the platform owes its merchants (pending until the settlement delay, then
        # available): credit-normal, so the balance is minus the signed sum
        "-SUM(amount) FILTER (WHERE account_type = 'merchant_available') AS available_change, "
        "-SUM(amount) FILTER (WHERE account_type IN ('merchant_pending', 'merchant_available')) "
        "AS balance_change "
        f"FROM observability_ledgerrollup r WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2",
        [q.granularity, *params],
    )
    # the balance before the range, from the hour rows (kept forever), then running
    before_where, before_params = Query(
        start=datetime(2000, 1, 1, tzinfo=UTC),
        end=q.start,
        granularity="hour",
        livemode=q.livemode,
        merchant_ids=q.merchant_ids,
    ).scope_sql()
    opening = {
        row["currency"]: -(row["s"] or 0)
        for row in _rows(
            "SELECT currency, SUM(amount) AS s FROM observability_ledgerrollup r "
            f"WHERE {before_where} AND account_type IN ('merchant_pending', 'merchant_available') "
            "GROUP BY 1",
            before_params,
        )
    }
    running = dict(opening)
    for row in series:
        running[row["currency"]] = running.get(row["currency"], 0) + (row["balance_change"] or 0)
        row["merchant_balance"] = running[row["currency"]]
        row["exponent"] = currency_exponent(row["currency"])
    totals: dict[str, dict] = {}
    for row in series:
        total = totals.setdefault(row["currency"], {"currency": row["currency"]})
        for key in ("volume", "revenue", "fees", "refunds", "disputes", "payouts"):
            total[key] = (total.get(key) or 0) + (row[key] or 0)
        total["merchant_balance"] = row["merchant_balance"]
    return {"series": series, "totals": list(totals.values()), "fees": _estimated_fees(q)}


def _estimated_fees(q: Query) -> list[dict]:
    """Fees per connector estimated from its fee schedule (approved amount and count per
    currency); actual fees come from reconciliation once it lands."""
    from apps.connectors.selectors import estimate_fee

    where, params = q.coarse_scope_sql()
    rows = _rows(
        "SELECT connector_id, currency, brand, SUM(attempts) AS n, SUM(amount) AS amount "
        f"FROM observability_attemptrollup r WHERE {where} AND outcome = 'approved' "
        "GROUP BY 1, 2, 3",
        params,
    )
    Connector = apps.get_model("connectors", "Connector")
    connectors = Connector.objects.in_bulk({row["connector_id"] for row in rows})
    result: dict[tuple, dict] = {}
    for row in rows:
        connector = connectors.get(row["connector_id"])
        if connector is None:
            continue
        average = row["amount"] // row["n"] if row["n"] else 0
        fee = (
            estimate_fee(
                connector=connector,
                amount=average,
                currency=row["currency"],
                brand=row["brand"] or "*",
            )
            or 0
        )
        entry = result.setdefault(
            (connector.pk, row["currency"]),
            {
                "connector": f"{connector.name} ({connector.connector_type})",
                "currency": row["currency"],
                "payments": 0,
                "amount": 0,
                "estimated_fees": 0,
            },
        )
        entry["payments"] += row["n"]
        entry["amount"] += row["amount"]
        entry["estimated_fees"] += fee * row["n"]
    return sorted(result.values(), key=lambda e: -e["amount"])


# --------------------------------------------------------------------------- risk


def _radar_counts(q: Query, names: dict) -> list[dict]:
    """Payments Radar (apps/risk) blocked and sent to review in the range, per merchant, when
    the app is installed (its tables hold only those payments: small)."""
    if not apps.is_installed("apps.risk"):
        return []
    from django.db.models import Count, Q

    Blocked = apps.get_model("risk", "BlockedPayment")
    Review = apps.get_model("risk", "Review")
    blocked = Blocked.objects.filter(
        livemode=q.livemode, created_at__gte=q.start, created_at__lt=q.end
    )
    reviews = Review.objects.filter(
        livemode=q.livemode, opened_at__gte=q.start, opened_at__lt=q.end
    )
    if q.merchant_ids is not None:
        blocked = blocked.filter(merchant_id__in=q.merchant_ids)
        reviews = reviews.filter(merchant_id__in=q.merchant_ids)
    counts: dict[int, dict] = {}
    for merchant_id, n in blocked.values_list("merchant_id").annotate(n=Count("id")):
        counts.setdefault(merchant_id, {"blocked": 0, "reviewed": 0, "open": 0})["blocked"] = n
    for merchant_id, n, still_open in reviews.values_list("merchant_id").annotate(
        n=Count("id"), still_open=Count("id", filter=Q(status="open"))
    ):
        entry = counts.setdefault(merchant_id, {"blocked": 0, "reviewed": 0, "open": 0})
        entry["reviewed"], entry["open"] = n, still_open
    if set(counts) - set(names):
        Merchant = apps.get_model("merchants", "Merchant")
        names = {**names, **dict(Merchant.objects.filter(pk__in=counts).values_list("pk", "name"))}
    return [
        {"merchant": names.get(merchant_id, str(merchant_id)), **values}
        for merchant_id, values in sorted(counts.items())
    ]


def _disputes_opened(q: Query) -> dict[int, int]:
    """Disputes opened in the range per merchant, from the disputes app's own rows (one per PSP
    dispute; its ledger journals would count a withdrawal and its fee twice)."""
    if not apps.is_installed("apps.disputes"):
        return {}
    Dispute = apps.get_model("disputes", "Dispute")
    opened = Dispute.objects.filter(
        livemode=q.livemode, created_at__gte=q.start, created_at__lt=q.end
    )
    if q.merchant_ids is not None:
        opened = opened.filter(merchant_id__in=q.merchant_ids)
    return {
        row["merchant_id"]: row["n"]
        for row in opened.values("merchant_id").annotate(n=Count("id")).order_by()
    }


def risk_dashboard(q: Query) -> dict:
    where, params = q.coarse_scope_sql()
    payments = {
        row["merchant_id"]: row
        for row in _rows(
            "SELECT merchant_id, SUM(attempts) FILTER (WHERE outcome = 'approved') AS approved, "
            "SUM(attempts) FILTER (WHERE decline_code IN ('fraudulent', 'merchant_blacklist', "
            "'stolen_card', 'lost_card', 'pickup_card')) AS blocked "
            f"FROM observability_attemptrollup r WHERE {where} GROUP BY 1",
            params,
        )
    }
    disputes = _disputes_opened(q)
    Merchant = apps.get_model("merchants", "Merchant")
    names = dict(
        Merchant.objects.filter(pk__in=set(payments) | set(disputes)).values_list("pk", "name")
    )
    rows = []
    for merchant_id in sorted(set(payments) | set(disputes)):
        approved = (payments.get(merchant_id) or {}).get("approved") or 0
        count = disputes.get(merchant_id, 0) or 0
        ratio = count / approved if approved else 0.0
        rows.append(
            {
                "merchant": names.get(merchant_id, str(merchant_id)),
                "payments": approved,
                "disputes": count,
                "rate": round(100 * ratio, 3),
                "blocked": (payments.get(merchant_id) or {}).get("blocked") or 0,
                "programmes": [
                    name
                    for name, limit, minimum in DISPUTE_THRESHOLDS
                    if ratio >= limit and count >= minimum
                ],
            }
        )
    Intent = apps.get_model("intents", "PaymentIntent")
    review = Intent.objects.filter(needs_review=True, livemode=q.livemode)
    if q.merchant_ids is not None:
        review = review.filter(merchant_id__in=q.merchant_ids)
    radar = _radar_counts(q, names)
    return {
        "radar": radar,
        "merchants": sorted(rows, key=lambda r: -r["rate"]),
        "thresholds": [
            {"name": n, "rate": round(100 * r, 2), "minimum": m} for n, r, m in DISPUTE_THRESHOLDS
        ],
        "needs_review": review.count(),
        "risk_installed": apps.is_installed("apps.risk"),
    }
