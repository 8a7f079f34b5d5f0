"""Makes the request's `Idempotency-Key` available to `outbox_record`, the way the request id
is, so every event names the key of the call that caused it."""

from __future__ import annotations

import contextvars

current_idempotency_key: contextvars.ContextVar[str] = contextvars.ContextVar(
    "current_idempotency_key", default=""
)
_MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


def get_idempotency_key() -> str:
    return current_idempotency_key.get()


class IdempotencyKeyContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        key = ""
        if request.method in _MUTATING:
            key = (request.headers.get("Idempotency-Key") or "")[:255]
        token = current_idempotency_key.set(key)
        try:
            return self.get_response(request)
        finally:
            current_idempotency_key.reset(token)
