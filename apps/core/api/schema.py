"""OpenAPI: the bearer-key auth scheme, the error envelope on every operation, and the
`Idempotency-Key` header on every mutating one."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension

_ERROR_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}
_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "code", "message", "param", "request_id"],
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
                "param": {"type": "string", "nullable": True},
                "decline_code": {"type": "string"},
                "advice_code": {"type": "string"},
                "request_id": {"type": "string", "nullable": True},
            },
        }
    },
}
_ERROR_STATUSES = {
    "400": "Invalid request (the `param` names the offending parameter)",
    "401": "Missing, malformed, unknown, revoked or wrong-mode API key",
    "403": "The key may not call this endpoint (e.g. a publishable key)",
    "404": "No such object",
    "409": "The object's state does not allow this, or the Idempotency-Key is in use",
    "413": "Body larger than 1 MiB",
    "415": "Content-Type is not application/json",
    "429": "Rate limited",
    "500": "Internal error (quote the request id)",
}
_IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Up to 255 characters. Retrying with the same key returns the first response "
        "byte-for-byte (with `Idempotent-Replayed: true`); a different body with the same key "
        "is a 400 idempotency_error; a retry while the first is still running is a 409."
    ),
    "schema": {"type": "string", "maxLength": 255},
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


def add_error_envelope_and_idempotency(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["ErrorEnvelope"] = _ERROR_SCHEMA
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            for status, description in _ERROR_STATUSES.items():
                responses.setdefault(
                    status,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": _ERROR_REF}},
                    },
                )
            if method in {"post", "put", "patch", "delete"}:
                parameters = operation.setdefault("parameters", [])
                if not any(p.get("name") == "Idempotency-Key" for p in parameters):
                    parameters.append(dict(_IDEMPOTENCY_HEADER))
    return result
