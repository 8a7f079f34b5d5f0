"""OpenTelemetry set-up: off unless the standard OTEL_* variables ask for it.

Tracing starts when OTEL_TRACES_EXPORTER names an exporter (`otlp`, `console`) or
OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, and
OTEL_SDK_DISABLED is not `true`. The OTLP/HTTP exporter then reads its endpoint, headers,
timeout and compression from the OTEL_EXPORTER_OTLP_* variables itself; the service name from
OTEL_SERVICE_NAME (default `payments-platform`), OTEL_RESOURCE_ATTRIBUTES, and the sampler from
OTEL_TRACES_SAMPLER(_ARG) (parent-based always-on by default), all as the SDK defines them.

The instrumentations: Django (a server span per request), psycopg (a span per query, without
parameters), requests (the PSP and webhook calls), redis, Celery (a task's span is a child of
the span that enqueued it: the trace crosses from the API to the relay and the delivery)."""

from __future__ import annotations

import logging
import os
import sys

logger = logging.getLogger(__name__)

_configured = False


def tracing_requested(environ=os.environ) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(
        exporter
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def instrument() -> None:
    """The library instrumentations (idempotent). Card data never reaches a span: psycopg's
    spans carry the statement without its parameters, requests' the method, URL and status."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    for instrumentor, kwargs in (
        (DjangoInstrumentor(), {"excluded_urls": "healthz,readyz,metrics,static/"}),
        (PsycopgInstrumentor(), {"enable_commenter": False, "skip_dep_check": True}),
        (RequestsInstrumentor(), {}),
        (RedisInstrumentor(), {}),
        (CeleryInstrumentor(), {}),
    ):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(**kwargs)


def configure(provider) -> None:
    """Installs `provider` as the global tracer provider and instruments the libraries (tests
    pass one with an in-memory exporter)."""
    from opentelemetry import trace

    trace.set_tracer_provider(provider)
    instrument()


def configure_from_environment() -> None:
    global _configured
    if _configured or not tracing_requested():
        return
    _configured = True
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    os.environ.setdefault("OTEL_SERVICE_NAME", "payments-platform")
    provider = TracerProvider(resource=Resource.create())
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if exporter_name == "console":
        # stderr: stdout is what commands answer (`seed_demo --json` in make run)
        exporter = ConsoleSpanExporter(out=sys.stderr)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    configure(provider)
    logger.info("tracing: exporting spans (%s)", exporter_name)
