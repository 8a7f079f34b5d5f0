"""The one hierarchy of domain errors. Services raise these; one DRF exception handler turns
them into the error envelope `{"error": {type, code, message, param, ...}}`."""

from __future__ import annotations


class PlatformError(Exception):
    http_status = 400
    error_type = "invalid_request_error"
    default_code = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        advice_code: str | None = None,
        extra: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param
        self.decline_code = decline_code
        self.advice_code = advice_code
        self.extra = extra or {}

    def as_dict(self, request_id: str | None = None) -> dict:
        body = {
            "type": self.error_type,
            "code": self.code,
            "message": self.message,
            "param": self.param,
            "request_id": request_id,
        }
        if self.decline_code:
            body["decline_code"] = self.decline_code
        if self.advice_code:
            body["advice_code"] = self.advice_code
        body.update(self.extra)
        return body


class InvalidRequestError(PlatformError):
    """400: the request is malformed or names something invalid."""


class NotFoundError(PlatformError):
    http_status = 404
    default_code = "resource_missing"


class ConflictError(PlatformError):
    """409: the object's current state does not allow the operation."""

    http_status = 409
    default_code = "unexpected_state"


class AuthenticationError(PlatformError):
    http_status = 401
    error_type = "authentication_error"
    default_code = "api_key_invalid"


class PermissionDeniedError(PlatformError):
    http_status = 403
    error_type = "permission_error"
    default_code = "permission_denied"


class IdempotencyError(PlatformError):
    error_type = "idempotency_error"
    default_code = "idempotency_key_reused"


class IdempotencyInFlightError(IdempotencyError):
    http_status = 409
    default_code = "idempotency_key_in_use"


class IdempotencyInterruptedError(IdempotencyError):
    """The key's first request died after it changed something: it is never run a second
    time (that could charge twice); the client retrieves what it changed."""

    http_status = 409
    default_code = "idempotency_request_interrupted"


class CardError(PlatformError):
    """402: the card was declined."""

    http_status = 402
    error_type = "card_error"
    default_code = "card_declined"


class RateLimitError(PlatformError):
    http_status = 429
    error_type = "rate_limit_error"
    default_code = "rate_limited"


class ApiError(PlatformError):
    http_status = 500
    error_type = "api_error"
    default_code = "internal_error"


class ServiceUnavailableError(ApiError):
    """503: a dependency (a PSP, Redis, the database) is briefly away; nothing was done that a
    retry could repeat. `retry_after` seconds go out as the Retry-After header."""

    http_status = 503
    default_code = "service_unavailable"

    def __init__(self, message: str, *, retry_after: int = 2, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class PSPIntegrationError(ApiError):
    """A PSP call failed. `permanent` says whether retrying can ever help, so the retry decision
    is data, not a guess."""

    http_status = 502
    default_code = "psp_error"

    def __init__(self, message: str, *, permanent: bool, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.permanent = permanent
