"""OpenAPI: the bearer-key auth scheme, the error envelope with the statuses each operation can
answer, the `Idempotency-Key` header on every mutating operation, and closed objects
(`additionalProperties: false`: request bodies refuse unknown parameters, responses carry
exactly the documented fields). tests/core/test_openapi_contract.py holds the server to it."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from apps.core.idempotency import MAX_KEY_LENGTH

_ERROR_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}
_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "code", "message", "param", "request_id"],
            "additionalProperties": False,
            "properties": {
                "type": {
                    "type": "string",
                    "enum": [
                        "invalid_request_error",
                        "authentication_error",
                        "permission_error",
                        "card_error",
                        "idempotency_error",
                        "api_error",
                        "rate_limit_error",
                    ],
                },
                "code": {"type": "string"},
                "message": {"type": "string"},
                "param": {
                    "type": "string",
                    "nullable": True,
                    "description": "The offending parameter, nested ones as `card[number]`.",
                },
                "decline_code": {"type": "string"},
                "advice_code": {"type": "string"},
                "request_id": {"type": "string", "nullable": True},
                "payment_intent": {
                    "allOf": [{"$ref": "#/components/schemas/PaymentIntentOutput"}],
                    "description": "When a confirm failed (402 decline, 502/503 not the "
                    "card): the intent, back in requires_payment_method.",
                },
                "payment_intent_status": {
                    "type": "string",
                    "description": "On a 409 about the intent's state: its status.",
                },
                "objects": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "On a 409 idempotency_request_interrupted: the public ids "
                    "of what the key's interrupted first request changed.",
                },
                "routing": {
                    "type": "object",
                    "additionalProperties": {},
                    "description": "When no connector could take the payment: the routing "
                    "decision trace.",
                },
            },
        }
    },
}
_ERROR_DESCRIPTIONS = {
    "400": "Invalid request: the `param` names the offending parameter",
    "401": "Missing, malformed, unknown, revoked, expired or wrong-mode API key",
    "402": "The card was declined (type card_error); the intent is in `payment_intent`",
    "403": "A publishable key on an endpoint that needs the secret key",
    "404": "No such object (also another merchant's, or in the other mode)",
    "409": "The object's state does not allow this, the Idempotency-Key is in use, or its "
    "first request was interrupted after it changed something (never run twice)",
    "413": "Body larger than 1 MiB",
    "415": "Content-Type is not application/json",
    "500": "Internal error (quote the request id)",
    "502": "The PSP refused the request itself or the connector's credentials, or the "
    "connector's endpoint is not allowed (type api_error, code psp_request_invalid, "
    "psp_authentication_failed or connector_configuration_invalid): not a card decline; the "
    "intent is in `payment_intent`",
    "503": "Briefly unavailable (e.g. the database is restarting, or no PSP could take the "
    "payment: code psp_unavailable, the intent in `payment_intent`): retry after Retry-After "
    "seconds",
}
# operations whose body names another object that may not exist (a 404 with that `param`)
_BODY_REFERENCES = {"payment_intents_create", "refunds_create"}
# operations that may end in a decline
_DECLINES = {"payment_intents_create", "payment_intents_confirm"}
# operations that call a PSP and answer its refusal as 502 (not a decline)
_PSP_REFUSALS = {"disputes_update", "disputes_close"}

_IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        f"1 to {MAX_KEY_LENGTH} printable characters. Retrying with the same key returns the "
        "first response byte-for-byte (with `Idempotent-Replayed: true`); a different body "
        "with the same key is a 400 idempotency_error; a retry while the first is still "
        "running is a 409."
    ),
    # printable ASCII with at least one non-space (the server takes any printable string)
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_KEY_LENGTH,
        "pattern": "^[ -~]*[!-~][ -~]*$",
    },
}
_RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer", "minimum": 1},
    }
}


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apps.merchants.api.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "`Authorization: Bearer sk_test_…` (secret) or `pk_test_…`",
        }


def _views_by_operation(generator) -> dict[tuple[str, str], object]:
    views = {}
    for path, _regex, method, callback in getattr(generator, "endpoints", None) or []:
        views[(path, method.lower())] = getattr(callback, "cls", None)
    return views


def _error_statuses(path: str, method: str, operation: dict, view) -> list[str]:
    authenticated = any("ApiKeyAuth" in entry for entry in operation.get("security", []))
    mutating = method in {"post", "put", "patch", "delete"}
    queries = any(p.get("in") == "query" for p in operation.get("parameters", []))
    operation_id = operation.get("operationId")
    statuses = {"413", "500", "503"}
    if queries or mutating:
        statuses.add("400")
    if authenticated:
        statuses.add("401")
        permissions = [p.__name__ for p in getattr(view, "permission_classes", [])]
        if "PublishableKeyAllowed" not in permissions:
            statuses.add("403")
    if "{" in path or operation_id in _BODY_REFERENCES:
        statuses.add("404")
    if operation_id in _DECLINES:
        statuses |= {"402", "502"}
    if operation_id in _PSP_REFUSALS:
        statuses.add("502")
    if mutating:
        statuses |= {"409", "415"}
    return sorted(statuses)


def _close_objects(node) -> None:
    """`additionalProperties: false` on every object with listed properties that does not say
    otherwise (free-form objects, e.g. metadata, keep their own additionalProperties)."""
    if isinstance(node, list):
        for item in node:
            _close_objects(item)
        return
    if not isinstance(node, dict):
        return
    if "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    for value in node.values():
        _close_objects(value)


def add_error_envelope_and_idempotency(result, generator, request, public):
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    _close_objects(schemas)
    schemas["ErrorEnvelope"] = _ERROR_SCHEMA
    views = _views_by_operation(generator)
    for path, path_item in result.get("paths", {}).items():
        for method, operation in path_item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            view = views.get((path, method))
            for status in _error_statuses(path, method, operation, view):
                response = {
                    "description": _ERROR_DESCRIPTIONS[status],
                    "content": {"application/json": {"schema": _ERROR_REF}},
                }
                if status == "503":
                    response["headers"] = _RETRY_AFTER_HEADER
                responses.setdefault(status, response)
            if method in {"post", "put", "patch", "delete"}:
                parameters = operation.setdefault("parameters", [])
                if not any(p.get("name") == "Idempotency-Key" for p in parameters):
                    parameters.append(dict(_IDEMPOTENCY_HEADER))
    return result
