"""Spans for the platform's own steps (tx A, the routing decision, each PSP call, tx B, the
outbox relay, a webhook delivery), on top of what the Django, psycopg, requests, redis and
Celery instrumentations record (apps/observability/tracing_setup.py).

Through the OpenTelemetry API only: with no tracer provider configured (the default: tracing
is off unless OTEL_* variables say otherwise) every call here is a no-op costing a function
call. Attributes are bounded, non-sensitive values: connector and attempt public ids, PSP type,
operation, outcome. Never a card number, CVC, credential or customer detail."""

from __future__ import annotations

from contextlib import contextmanager

from opentelemetry import trace

_tracer = trace.get_tracer("payments_platform")


@contextmanager
def span(name: str, **attributes):
    """`with span("pp.tx_a", intent="pi_…"):` — attribute names get the `pp.` prefix."""
    with _tracer.start_as_current_span(
        name,
        attributes={f"pp.{key}": value for key, value in attributes.items() if value is not None},
    ) as current:
        yield current


def set_attributes(**attributes) -> None:
    current = trace.get_current_span()
    if current.is_recording():
        for key, value in attributes.items():
            if value is not None:
                current.set_attribute(f"pp.{key}", value)


def current_trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
