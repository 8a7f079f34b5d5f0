"""Turns every error on an API path into the one envelope."""

from __future__ import annotations

import json
import logging
import traceback

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.views import set_rollback

from apps.core.errors import (
    ApiError,
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    PlatformError,
    RateLimitError,
    ServiceUnavailableError,
)
from apps.core.logging import get_request_id

logger = logging.getLogger("apps.api")


def envelope_response(error: PlatformError, *, status: int | None = None, request=None):
    request_id = getattr(request, "request_id", None) or get_request_id()
    body = json.dumps({"error": error.as_dict(request_id)})
    response = HttpResponse(
        body, status=status or error.http_status, content_type="application/json"
    )
    retry_after = getattr(error, "retry_after", None)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


def is_database_unavailable(exc: BaseException | None) -> bool:
    """A database that is briefly away: refused or dropped connection, terminated backend, pool
    timeout (Django wraps each as OperationalError or InterfaceError), or a statement the server
    cancelled for a transient reason (deadlock, lock timeout), which a retry also cures."""
    return isinstance(exc, (OperationalError, InterfaceError))


def database_unavailable_error() -> ServiceUnavailableError:
    return ServiceUnavailableError(
        "The service is briefly unavailable. Retry the request shortly (see Retry-After).",
        code="service_unavailable",
    )


def _first_validation_error(detail, prefix: str = "") -> tuple[str | None, str, str]:
    """Walks DRF's nested validation detail to the first field error: (param, code, message)."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = prefix if key == "non_field_errors" else (f"{prefix}[{key}]" if prefix else key)
            return _first_validation_error(value, name)
    if isinstance(detail, list) and detail:
        for index, value in enumerate(detail):
            if isinstance(value, (dict, list)):
                return _first_validation_error(value, f"{prefix}[{index}]")
            return _first_validation_error(value, prefix)
    code = getattr(detail, "code", None) or "invalid"
    return (prefix or None), _validation_code(code), str(detail)


def _validation_code(code: str) -> str:
    return {
        "required": "parameter_missing",
        "null": "parameter_missing",
        "blank": "parameter_missing",
        "invalid": "parameter_invalid",
        "does_not_exist": "resource_missing",
        "null_characters_not_allowed": "parameter_invalid_character",
        "surrogate_characters_not_allowed": "parameter_invalid_character",
    }.get(
        code,
        code if code.startswith(("parameter_", "amount_", "currency_")) else f"parameter_{code}",
    )


def to_platform_error(exc: Exception) -> PlatformError:
    if isinstance(exc, PlatformError):
        return exc
    if isinstance(exc, drf_exceptions.ValidationError):
        param, code, message = _first_validation_error(exc.detail)
        if param and not message.lower().startswith(param.split("[")[0].lower()):
            message = f"{param}: {message}"
        return InvalidRequestError(message, code=code, param=param)
    if isinstance(exc, drf_exceptions.ParseError):
        return InvalidRequestError(
            "The request body is not valid JSON.", code="body_malformed_json"
        )
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        error = InvalidRequestError(
            "Content-Type must be application/json.", code="unsupported_media_type"
        )
        error.http_status = 415
        return error
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        error = InvalidRequestError(str(exc.detail), code="method_not_allowed")
        error.http_status = 405
        return error
    if isinstance(exc, drf_exceptions.NotAcceptable):
        error = InvalidRequestError(str(exc.detail), code="not_acceptable")
        error.http_status = 406
        return error
    if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
        return AuthenticationError(str(exc.detail), code="api_key_missing")
    if isinstance(exc, (drf_exceptions.PermissionDenied, PermissionDenied)):
        return PermissionDeniedError(str(getattr(exc, "detail", exc)) or "Permission denied.")
    if isinstance(exc, (drf_exceptions.NotFound, Http404)):
        return NotFoundError("No such resource.", code="resource_missing")
    if isinstance(exc, drf_exceptions.Throttled):
        return RateLimitError("Too many requests: slow down.")
    if isinstance(exc, RequestDataTooBig):
        error = InvalidRequestError("Request body is too large.", code="request_too_large")
        error.http_status = 413
        return error
    if is_database_unavailable(exc):
        return database_unavailable_error()
    if isinstance(exc, drf_exceptions.APIException):
        error = InvalidRequestError(str(exc.detail), code=str(exc.default_code))
        error.http_status = exc.status_code
        return error
    return ApiError("An internal error occurred. Quote the request id to support.")


def api_exception_handler(exc, context):
    error = to_platform_error(exc)
    if is_database_unavailable(exc):
        logger.warning(
            "database unavailable on %s: %s", context["request"].path, type(exc).__name__
        )
    elif error.http_status >= 500 and isinstance(exc, PlatformError):
        # a dependency's failure the code expected and answered (a PSP or Redis away): no frames
        logger.warning("%s %s on %s", error.http_status, error.code, context["request"].path)
    elif error.http_status >= 500:
        # the type and the frames, never the exception text: it can hold card data or secrets
        logger.error(
            "unhandled %s on %s\n%s",
            type(exc).__name__,
            context["request"].path,
            "".join(traceback.format_tb(exc.__traceback__)),
        )
    set_rollback()
    request = context.get("request")
    response = envelope_response(error, request=getattr(request, "_request", request))
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        allowed = getattr(context.get("view"), "allowed_methods", None)
        if allowed:
            response["Allow"] = ", ".join(allowed)
    return response


# Django-level handlers for paths no DRF view matched (unknown URLs, crashes outside views).
def handler404(request, exception=None):
    if request.path.startswith("/v1/") or request.path.startswith("/webhooks/"):
        return envelope_response(
            NotFoundError(
                f"Unrecognized request URL ({request.method}: {request.path}).",
                code="resource_missing",
            ),
            request=request,
        )
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def unknown_api_url(request, *args, **kwargs):
    """The catch-all route at the end of /v1/: the same answer as handler404, whatever DEBUG."""
    return handler404(request)


def handler500(request):
    if request.path.startswith("/v1/") or request.path.startswith("/webhooks/"):
        return envelope_response(
            ApiError("An internal error occurred. Quote the request id to support."),
            request=request,
        )
    from django.views.defaults import server_error

    return server_error(request)
