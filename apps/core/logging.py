"""Request ids: one per request, in the `Request-Id` response header and in every log line."""

import contextvars
import logging
import re

from apps.core.tracing import current_trace_id

current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "current_request_id", default="-"
)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get()
        # the OpenTelemetry trace id next to the request id, when tracing is on (issue 17)
        trace_id = current_trace_id()
        record.trace = f" trace={trace_id}" if trace_id else ""
        return True


def get_request_id() -> str | None:
    value = current_request_id.get()
    return None if value == "-" else value


_PAN = re.compile(r"(?<!\d)\d{13,19}(?!\d)")
_SECRET = re.compile(r"\b((?:sk|rk|whsec)_(?:test_|live_)?)[A-Za-z0-9]{6,}")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def redact(text: str) -> str:
    """Masks card numbers (Luhn-valid 13-19 digit runs) and secret keys in a log line."""
    text = _PAN.sub(lambda m: "[card redacted]" if _luhn_ok(m.group()) else m.group(), text)
    return _SECRET.sub(lambda m: m.group(1) + "[redacted]", text)


class RedactingFormatter(logging.Formatter):
    """Last line of defence: whatever a log call passes, card numbers and keys are masked."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
