"""What the connectors service modules share: why a connector is disabled (its
`disabled_reason`), and the error for a bad parameter."""

from __future__ import annotations

from apps.core.errors import InvalidRequestError

AUTO_DISABLED = "auto_error_rate"
MANUALLY_DISABLED = "manual"
ENDPOINT_NOT_ALLOWED = "endpoint_not_allowed"  # disabled: its endpoint left the allow-list


def _invalid(message: str, param: str, code: str = "parameter_invalid") -> InvalidRequestError:
    return InvalidRequestError(message, code=code, param=param)
