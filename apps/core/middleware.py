import secrets
import sys

from django.conf import settings
from django.core.signals import got_request_exception
from django.http import HttpResponse

from apps.core.errors import PlatformError
from apps.core.logging import current_request_id


def _is_api_path(path: str) -> bool:
    return path.startswith("/v1/") or path == "/v1"


class RequestIdMiddleware:
    """Gives every request an id, puts it in the logs (via a contextvar) and the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = "req_" + secrets.token_urlsafe(12)
        request.request_id = request_id
        token = current_request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
        response["Request-Id"] = request_id
        return response


class ApiBodyLimitMiddleware:
    """Refuses API bodies over the limit before anything reads them: 413 in the error envelope."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if _is_api_path(request.path) or request.path.startswith("/webhooks/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > settings.API_MAX_BODY_BYTES:
                from apps.core.api.exceptions import envelope_response

                return envelope_response(
                    PlatformError(
                        f"Request body is larger than {settings.API_MAX_BODY_BYTES} bytes.",
                        code="request_too_large",
                    ),
                    status=413,
                    request=request,
                )
        return self.get_response(request)


_UNAVAILABLE_PAGE = (
    "<!doctype html><title>Temporarily unavailable</title>"
    "<h1>Temporarily unavailable</h1><p>The service is briefly unavailable. "
    "Try again in a few seconds.</p>"
)


def _database_unavailable_response(request):
    from apps.core.api.exceptions import database_unavailable_error, envelope_response

    error = database_unavailable_error()
    if _is_api_path(request.path) or request.path.startswith("/webhooks/"):
        return envelope_response(error, request=request)
    response = HttpResponse(_UNAVAILABLE_PAGE, status=503, content_type="text/html")
    response["Retry-After"] = str(error.retry_after)
    return response


def _mark_database_unavailable(sender, request=None, **kwargs):
    from apps.core.api.exceptions import is_database_unavailable

    if request is not None and is_database_unavailable(sys.exc_info()[1]):
        request._database_unavailable = True


got_request_exception.connect(
    _mark_database_unavailable, dispatch_uid="apps.core.middleware.database_unavailable"
)


class DatabaseUnavailableMiddleware:
    """A database that is briefly away (PostgreSQL restarting, a terminated backend, a pool
    timeout) answers 503 with Retry-After: the error envelope on API paths, a short page
    elsewhere (the admin), never a 500 or, with DEBUG on, a debug page showing SQL.

    A view's exception arrives in process_exception. One raised by an inner middleware (a
    session saved on the way out) was already turned into a 500 by Django; the
    got_request_exception signal marked the request, and the 500 is replaced here."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if getattr(request, "_database_unavailable", False) and response.status_code >= 500:
            return _database_unavailable_response(request)
        return response

    def process_exception(self, request, exception):
        from apps.core.api.exceptions import is_database_unavailable

        if is_database_unavailable(exception):
            return _database_unavailable_response(request)
        return None
