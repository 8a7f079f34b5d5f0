"""The platform's Prometheus metrics: every name, its labels, and the hooks that move them.

Defined here, in core, because every app may import core and core imports no app: the gateway,
the confirm path, the outbox relay, the webhook sender, the ledger and the apps built later
(disputes, reconciliation, risk) all count through the functions below without importing one
another. Scrape-time gauges (outbox lag, queue depths, backlogs, breakers) are computed by the
collector in `apps/core/metrics_collector.py` when /metrics is read, never on the hot path.

Conventions (https://prometheus.io/docs/practices/naming/): the `pp_` prefix, base units
(seconds), `_total` on counters. Every label takes a bounded set of values: modes (`live`,
`test`), PSP types (`stripe`, `adyen`), operations, outcomes, normalized decline codes (an
unknown code is `other`), journal kinds. No merchant, connector, intent or attempt id ever
becomes a label: ids belong in traces and logs.

Hot-path cost: one counter increment (a dict lookup and a lock-free add in the process's memory,
or an mmap write in multiprocess mode). No database or Redis round trip.

Multiprocess mode (gunicorn workers, Celery prefork children): when PROMETHEUS_MULTIPROC_DIR is
set before this module is imported, prometheus_client writes every sample to files there and
/metrics merges them (`scripts/run.sh` sets and empties the directory; `gunicorn.conf.py`
marks a dead worker's files; Celery marks its children on exit).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from prometheus_client import Counter, Histogram

# PSP and webhook latencies: from a 5 ms simulator answer to a 30 s timeout
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# the routing decision is in-process: microseconds to a few milliseconds
_ROUTING_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)

_LABEL_VALUE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# the shape of the platform's public ids (pi_…, pa_…, mca_…): never a label value
_PUBLIC_ID = re.compile(r"^[a-z]{2,5}_[A-Za-z0-9]{12,}$")


def bounded(value: str | None, allowed: Iterable[str] | None = None, *, default="other") -> str:
    """A label value from a bounded set: `allowed` when given, else a short lowercase token;
    anything else (an id, free text, a PSP's raw code) is `default`."""
    if not value:
        return "none"
    value = str(value)
    if allowed is not None:
        value = value.lower()
        return value if value in allowed else default
    return value if _LABEL_VALUE.match(value) and not _PUBLIC_ID.match(value) else default


def mode(livemode: bool) -> str:
    return "live" if livemode else "test"


# --------------------------------------------------------------------------- PSP calls (gateway)

PSP_REQUESTS = Counter(
    "pp_psp_requests",
    "PSP calls through the connector gateway, by PSP type, operation and normalized outcome.",
    ["psp", "operation", "outcome"],
)
PSP_REQUEST_DURATION = Histogram(
    "pp_psp_request_duration_seconds",
    "Latency of PSP calls through the connector gateway.",
    ["psp", "operation"],
    buckets=_LATENCY_BUCKETS,
)


def psp_call_observed(*, psp: str, operation: str, outcome: str, seconds: float) -> None:
    psp = bounded(psp)
    PSP_REQUESTS.labels(psp, bounded(operation), bounded(outcome)).inc()
    PSP_REQUEST_DURATION.labels(psp, bounded(operation)).observe(max(seconds, 0.0))


# --------------------------------------------------------------------------- payments (confirm)

PAYMENTS = Counter(
    "pp_payments",
    "Confirms that ended (the intent's state after the confirm), by mode, the PSP of the last "
    "attempt, status and normalized decline code.",
    ["mode", "psp", "status", "decline_code"],
)
PAYMENT_ATTEMPTS = Counter(
    "pp_payment_attempts",
    "Authorization attempts answered, by mode, PSP type and outcome.",
    ["mode", "psp", "outcome"],
)
PAYMENT_FAILOVERS = Counter(
    "pp_payment_failovers",
    "Failovers from one connector to the next within a confirm, by the PSP failed away from "
    "and the reason (the failed attempt's outcome).",
    ["mode", "from_psp", "reason"],
)
ROUTING_DECISION_DURATION = Histogram(
    "pp_routing_decision_duration_seconds",
    "Time to choose the connector of one attempt (the routing engine, in process).",
    buckets=_ROUTING_BUCKETS,
)


def payment_finished(
    *, livemode: bool, psp: str, status: str, decline_code: str = "", known_codes=None
) -> None:
    PAYMENTS.labels(
        mode(livemode),
        bounded(psp),
        bounded(status),
        bounded(decline_code, known_codes) if decline_code else "none",
    ).inc()


def attempt_answered(*, livemode: bool, psp: str, outcome: str) -> None:
    PAYMENT_ATTEMPTS.labels(mode(livemode), bounded(psp), bounded(outcome)).inc()


def failover(*, livemode: bool, from_psp: str, reason: str) -> None:
    PAYMENT_FAILOVERS.labels(mode(livemode), bounded(from_psp), bounded(reason)).inc()


def routing_decided(seconds: float) -> None:
    ROUTING_DECISION_DURATION.observe(max(seconds, 0.0))


BREAKER_TRANSITIONS = Counter(
    "pp_breaker_transitions",
    "Automatic circuit breaker transitions, by PSP type and the state entered.",
    ["psp", "state"],
)


def breaker_transitioned(*, psp: str, state: str) -> None:
    BREAKER_TRANSITIONS.labels(bounded(psp), bounded(state.replace("-", "_"))).inc()


# --------------------------------------------------------------------------- events

OUTBOX_RELAYED = Counter(
    "pp_outbox_relayed_events", "Outbox rows relayed into events and webhook deliveries."
)
WEBHOOK_DELIVERIES = Counter(
    "pp_webhook_deliveries",
    "Merchant webhook delivery tries, by result: succeeded, failed (will retry), dead "
    "(dead-lettered).",
    ["result"],
)
WEBHOOK_DELIVERY_DURATION = Histogram(
    "pp_webhook_delivery_duration_seconds",
    "Latency of merchant webhook POSTs.",
    buckets=_LATENCY_BUCKETS,
)
PSP_WEBHOOKS = Counter(
    "pp_psp_webhooks_received",
    "Inbound PSP notifications by PSP type and what became of them (stored, rejected, "
    "duplicate, processed, retrying, dead).",
    ["psp", "result"],
)


def outbox_relayed(count: int) -> None:
    if count:
        OUTBOX_RELAYED.inc(count)


def webhook_delivery(*, result: str, seconds: float | None = None) -> None:
    WEBHOOK_DELIVERIES.labels(bounded(result, {"succeeded", "failed", "dead"})).inc()
    if seconds is not None:
        WEBHOOK_DELIVERY_DURATION.observe(max(seconds, 0.0))


def psp_webhook(*, psp: str, result: str) -> None:
    PSP_WEBHOOKS.labels(bounded(psp), bounded(result)).inc()


# --------------------------------------------------------------------------- ledger

LEDGER_POSTINGS = Counter(
    "pp_ledger_postings",
    "Journal transactions committed to the ledger, by kind and mode.",
    ["kind", "mode"],
)


def ledger_posted(*, kind: str, livemode: bool) -> None:
    LEDGER_POSTINGS.labels(bounded(kind), mode(livemode)).inc()


# --------------------------------------------------------------------------- disputes (hook)
# For apps/disputes: call these from its services when a dispute opens and when it closes.

DISPUTES = Counter(
    "pp_disputes",
    "Disputes (chargebacks) by event: opened, won, lost; with PSP type and the reason "
    "category (fraudulent, product_not_received, ...; unknown categories are `other`).",
    ["psp", "event", "reason"],
)
DISPUTE_REASONS = frozenset(
    {
        "fraudulent",
        "product_not_received",
        "product_unacceptable",
        "duplicate",
        "subscription_canceled",
        "credit_not_processed",
        "unrecognized",
        "general",
    }
)


def dispute_opened(*, psp: str, reason: str = "") -> None:
    DISPUTES.labels(bounded(psp), "opened", bounded(reason, DISPUTE_REASONS)).inc()


def dispute_closed(*, psp: str, won: bool, reason: str = "") -> None:
    DISPUTES.labels(bounded(psp), "won" if won else "lost", bounded(reason, DISPUTE_REASONS)).inc()


# --------------------------------------------------------------------------- reconciliation (hook)
# For apps/reconciliation: call `reconciliation_run_finished` once per settlement file run.

RECONCILIATION_RUNS = Counter(
    "pp_reconciliation_runs",
    "Reconciliation runs by PSP type and result (succeeded, failed).",
    ["psp", "result"],
)
RECONCILIATION_DISCREPANCIES = Counter(
    "pp_reconciliation_discrepancies",
    "Discrepancies found by reconciliation runs, by PSP type and kind (missing_in_psp, "
    "missing_in_platform, amount_mismatch, fee_mismatch, currency_mismatch, status_mismatch).",
    ["psp", "kind"],
)


def reconciliation_run_finished(
    *, psp: str, succeeded: bool, discrepancies: dict[str, int] | None = None
) -> None:
    RECONCILIATION_RUNS.labels(bounded(psp), "succeeded" if succeeded else "failed").inc()
    for kind, count in (discrepancies or {}).items():
        if count:
            RECONCILIATION_DISCREPANCIES.labels(bounded(psp), bounded(kind)).inc(count)


# --------------------------------------------------------------------------- risk (hook)
# For apps/risk: call `risk_decided` once per payment the risk engine decides on.

RISK_DECISIONS = Counter(
    "pp_risk_decisions",
    "Risk decisions by mode and decision (allow, review, block, challenge).",
    ["mode", "decision"],
)


def risk_decided(*, livemode: bool, decision: str) -> None:
    RISK_DECISIONS.labels(
        mode(livemode), bounded(decision, {"allow", "review", "block", "challenge"})
    ).inc()


# --------------------------------------------------------------------------- scrape-time gauges
# An app whose state is a gauge (disputes near their deadline, the last reconciliation's
# discrepancies) registers a function here, from its AppConfig.ready; the collector calls it at
# each scrape. It returns (name, help, {label: value}, value) tuples; an exception is logged and
# that function's samples are left out of this scrape, never the whole page.

ScrapeGauge = Callable[[], Iterable[tuple[str, str, dict[str, str], float]]]
SCRAPE_GAUGES: list[ScrapeGauge] = []


def register_scrape_gauges(function: ScrapeGauge) -> ScrapeGauge:
    if function not in SCRAPE_GAUGES:
        SCRAPE_GAUGES.append(function)
    return function
