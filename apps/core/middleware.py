import secrets

from django.conf import settings

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
