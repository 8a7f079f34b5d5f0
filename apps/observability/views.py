"""GET /metrics: Prometheus exposition, never public.

A scrape is let in when it carries `Authorization: Bearer <METRICS_BEARER_TOKEN>` (compared in
constant time; an empty setting accepts no token) or comes from an address inside
`METRICS_ALLOWED_NETWORKS` (CIDRs; loopback by default). Anything else gets a 404, so the
endpoint does not advertise itself. Behind a proxy REMOTE_ADDR is the proxy: use the token.

With PROMETHEUS_MULTIPROC_DIR set (gunicorn workers, Celery children; `make run` sets it) the
counters and histograms of every process are merged from that directory; the scrape-time gauges
(apps/observability/collector.py) are computed once, here."""

from __future__ import annotations

import hmac
import ipaddress
import os

from django.conf import settings
from django.http import Http404, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from apps.observability.collector import PlatformCollector


def _networks() -> list:
    return [
        ipaddress.ip_network(item.strip(), strict=False)
        for item in settings.METRICS_ALLOWED_NETWORKS
        if item.strip()
    ]


def scrape_allowed(request) -> bool:
    token = settings.METRICS_BEARER_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if (
        token
        and header.startswith("Bearer ")
        and hmac.compare_digest(header[7:].strip().encode(), token.encode())
    ):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in _networks())


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_GlobalMetrics())
    registry.register(PlatformCollector())
    return registry


class _GlobalMetrics:
    """The process's own registry (single-process runs: runserver, tests)."""

    def collect(self):
        yield from REGISTRY.collect()


@require_GET
def metrics_view(request):
    if not scrape_allowed(request):
        raise Http404
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
