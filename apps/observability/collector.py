"""Scrape-time gauges: computed when /metrics is read, from cheap indexed queries, so that the
hot path never pays for them. Every query below uses a partial or leading-column index
(`outbox_unrelayed`, `delivery_due`, `delivery_merchant_status`, `inbound_webhook_due`,
`inbound_merchant_status`, the attempts' outcome index); the whole collection is a handful of
milliseconds however large the tables are (the counts are over backlogs, which are small when
the platform is healthy, and bounded by `SCRAPE_COUNT_CAP` when it is not).

Models are looked up through the app registry (`apps.get_model`) instead of importing other
apps: the collector reads, it never writes, and an app that is not installed (disputes,
reconciliation, risk on an older deploy) simply has no samples."""

from __future__ import annotations

import logging
import time

from django.apps import apps
from django.conf import settings
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from apps.core import metrics

logger = logging.getLogger(__name__)

# a backlog past this is reported as this: counting a million dead rows each scrape would make
# the scrape itself the incident
SCRAPE_COUNT_CAP = 100_000


def _capped_count(queryset) -> int:
    return len(queryset.values_list("pk", flat=True)[:SCRAPE_COUNT_CAP])


def _gauge(name: str, documentation: str, value: float, labels: dict | None = None):
    family = GaugeMetricFamily(name, documentation, labels=list((labels or {}).keys()))
    family.add_metric(list((labels or {}).values()), value)
    return family


class PlatformCollector:
    """Registered on the registry /metrics serves (not on the global one: the Celery workers
    and the tests never run these queries)."""

    def describe(self):
        return []

    def collect(self):
        started = time.monotonic()
        for part in (
            self._outbox,
            self._webhooks,
            self._payments,
            self._connectors,
            self._queues,
            self._money_audit,
            self._registered,
        ):
            try:
                yield from part()
            except Exception:  # one failing part must not take the page (or the others) down
                logger.exception("metrics: %s failed", part.__name__)
        yield _gauge(
            "pp_metrics_scrape_duration_seconds",
            "Time spent computing the scrape-time gauges.",
            time.monotonic() - started,
        )

    def _outbox(self):
        OutboxEvent = apps.get_model("events", "OutboxEvent")
        unrelayed = OutboxEvent.objects.filter(relayed_at__isnull=True)
        oldest = unrelayed.order_by("id").values_list("created_at", flat=True).first()
        lag = (timezone.now() - oldest).total_seconds() if oldest else 0.0
        yield _gauge(
            "pp_outbox_lag_seconds",
            "Age of the oldest outbox row not relayed yet (0 when none is waiting).",
            max(lag, 0.0),
        )
        yield _gauge(
            "pp_outbox_unrelayed_events",
            "Outbox rows waiting for the relay.",
            _capped_count(unrelayed),
        )

    def _webhooks(self):
        Delivery = apps.get_model("events", "WebhookDelivery")
        Inbound = apps.get_model("events", "InboundWebhook")
        family = GaugeMetricFamily(
            "pp_webhook_deliveries_backlog",
            "Merchant webhook deliveries by state: pending (due or retrying), dead "
            "(dead-lettered, waiting for a replay).",
            labels=["state"],
        )
        family.add_metric(["pending"], _capped_count(Delivery.objects.filter(status="pending")))
        family.add_metric(["dead"], _capped_count(Delivery.objects.filter(status="dead")))
        yield family
        family = GaugeMetricFamily(
            "pp_psp_webhooks_backlog",
            "Inbound PSP notifications by state: waiting (received, pending, processing, "
            "retrying) and dead (dead-lettered).",
            labels=["state"],
        )
        family.add_metric(
            ["waiting"],
            _capped_count(
                Inbound.objects.filter(status__in=["received", "pending", "processing", "retrying"])
            ),
        )
        family.add_metric(["dead"], _capped_count(Inbound.objects.filter(status="dead")))
        yield family

    def _payments(self):
        Attempt = apps.get_model("intents", "PaymentAttempt")
        Intent = apps.get_model("intents", "PaymentIntent")
        unknown = Attempt.objects.filter(outcome="unknown")
        yield _gauge(
            "pp_inquiry_backlog",
            "Attempts whose outcome is unknown, waiting for a status inquiry.",
            _capped_count(unknown),
        )
        oldest = unknown.order_by("id").values_list("started_at", flat=True).first()
        yield _gauge(
            "pp_inquiry_oldest_age_seconds",
            "Age of the oldest attempt whose outcome is still unknown (0 when none).",
            (timezone.now() - oldest).total_seconds() if oldest else 0.0,
        )
        yield _gauge(
            "pp_intents_needing_review",
            "Payment intents flagged for ops review (an outcome inquiries could not resolve).",
            _capped_count(Intent.objects.filter(needs_review=True)),
        )

    def _connectors(self):
        from apps.connectors.selectors import connector_health

        Connector = apps.get_model("connectors", "Connector")
        connectors = list(
            Connector.objects.filter(enabled=True).only("public_id", "connector_type")
        )
        states = GaugeMetricFamily(
            "pp_connector_breakers",
            "Enabled connectors by PSP type and circuit breaker state (closed, open, "
            "half_open, unknown when Redis does not answer).",
            labels=["psp", "state"],
        )
        counts: dict[tuple[str, str], int] = {}
        worst_error: dict[str, float] = {}
        for connector in connectors:
            for state in ("closed", "open", "half_open"):
                counts.setdefault((connector.connector_type, state), 0)
        for connector, view in zip(
            connectors, connector_health(connectors=connectors).values(), strict=True
        ):
            key = (connector.connector_type, metrics.bounded(view.breaker_state.replace("-", "_")))
            counts[key] = counts.get(key, 0) + 1
            if view.health is not None and view.health.error_rate is not None:
                psp = connector.connector_type
                worst_error[psp] = max(worst_error.get(psp, 0.0), view.health.error_rate)
        for (psp, state), count in sorted(counts.items()):
            states.add_metric([psp, state], count)
        yield states
        health = GaugeMetricFamily(
            "pp_connector_error_ratio_max",
            "The highest error ratio (transport failures and 5xx over calls) among a PSP's "
            "enabled connectors, over the rolling health window routing reads.",
            labels=["psp"],
        )
        for psp, ratio in sorted(worst_error.items()):
            health.add_metric([psp], ratio)
        yield health
        disabled = GaugeMetricFamily(
            "pp_connectors_disabled",
            "Connectors switched off (by ops or by the automatic health check), by PSP type.",
            labels=["psp"],
        )
        rows = Connector.objects.filter(enabled=False).values_list("connector_type", flat=True)
        per_psp: dict[str, int] = {}
        for psp in rows[:SCRAPE_COUNT_CAP]:
            per_psp[psp] = per_psp.get(psp, 0) + 1
        for psp, count in sorted(per_psp.items()):
            disabled.add_metric([psp], count)
        yield disabled

    def _queues(self):
        import redis

        client = redis.Redis.from_url(
            settings.CELERY_BROKER_URL, socket_connect_timeout=1, socket_timeout=1
        )
        try:
            queues = getattr(settings, "METRICS_CELERY_QUEUES", ["celery"])
            pipe = client.pipeline(transaction=False)
            for queue in queues:
                pipe.llen(queue)
            lengths = pipe.execute()
        finally:
            client.close()
        family = GaugeMetricFamily(
            "pp_celery_queue_length", "Messages waiting in a Celery queue.", labels=["queue"]
        )
        for queue, length in zip(queues, lengths, strict=True):
            family.add_metric([queue], length)
        yield family

    def _money_audit(self):
        if not apps.is_installed("apps.money_audit"):
            return
        Run = apps.get_model("money_audit", "MoneyAuditRun")
        last = (
            Run.objects.exclude(status="running")
            .order_by("-started_at")
            .values("checks_broken", "finished_at", "started_at")
            .first()
        )
        if last is None:
            return
        yield _gauge(
            "pp_money_audit_broken_checks",
            "Invariants the last finished money audit found broken.",
            last["checks_broken"],
        )
        yield _gauge(
            "pp_money_audit_last_run_timestamp_seconds",
            "When the last money audit finished (unix seconds).",
            (last["finished_at"] or last["started_at"]).timestamp(),
        )

    def _registered(self):
        families: dict[str, GaugeMetricFamily] = {}
        for function in list(metrics.SCRAPE_GAUGES):
            try:
                samples = list(function())
            except Exception:
                logger.exception("metrics: scrape gauge %r failed", function)
                continue
            for name, documentation, labels, value in samples:
                family = families.get(name)
                if family is None:
                    family = families[name] = GaugeMetricFamily(
                        name, documentation, labels=list(labels.keys())
                    )
                family.add_metric([metrics.bounded(v) for v in labels.values()], value)
        yield from families.values()
