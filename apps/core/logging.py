"""Request ids: one per request, in the `Request-Id` response header and in every log line."""

import contextvars
import logging

current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "current_request_id", default="-"
)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get()
        return True


def get_request_id() -> str | None:
    value = current_request_id.get()
    return None if value == "-" else value
