from rest_framework.permissions import BasePermission

from apps.core.errors import PermissionDeniedError


class SecretKeyRequired(BasePermission):
    """Default: secret keys only. Browser-callable endpoints use PublishableKeyAllowed."""

    def has_permission(self, request, view):
        if request.auth is None:
            return False
        if not request.auth.is_secret:
            raise PermissionDeniedError(
                "This endpoint needs a secret key (sk_…); publishable keys may only tokenize "
                "payment methods.",
                code="secret_key_required",
            )
        return True


class PublishableKeyAllowed(BasePermission):
    def has_permission(self, request, view):
        return request.auth is not None
