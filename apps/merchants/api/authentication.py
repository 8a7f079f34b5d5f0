from rest_framework.authentication import BaseAuthentication

from apps.core.errors import AuthenticationError
from apps.merchants.selectors import api_key_authenticate


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer <key>`. request.user is the merchant, request.auth the ApiKey."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            raise AuthenticationError(
                "No API key provided. Send 'Authorization: Bearer sk_test_…'.",
                code="api_key_missing",
            )
        scheme, _, raw_key = header.partition(" ")
        if scheme.lower() != "bearer" or not raw_key.strip():
            raise AuthenticationError(
                "Malformed Authorization header: expected 'Bearer <api key>'.",
                code="api_key_malformed",
            )
        key = api_key_authenticate(raw_key.strip())
        return key.merchant, key

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
