import threading
from datetime import UTC, datetime

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

# 9999-12-31T23:59:59Z, the last second a Python datetime (and so a filter on `created`) holds
MAX_TIMESTAMP = 253_402_300_799


class ErrorBodySerializer(serializers.Serializer):
    type = serializers.ChoiceField(
        choices=[
            "invalid_request_error",
            "authentication_error",
            "permission_error",
            "card_error",
            "idempotency_error",
            "api_error",
            "rate_limit_error",
        ]
    )
    code = serializers.CharField()
    message = serializers.CharField()
    param = serializers.CharField(allow_null=True)
    decline_code = serializers.CharField(required=False)
    advice_code = serializers.CharField(required=False)
    request_id = serializers.CharField(allow_null=True)


class ErrorEnvelopeSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


# The JSON type each kind of field takes. DRF would also take 12 for a string, "true" for a
# boolean and "5" for an integer; a JSON body gets the types its OpenAPI schema says, so that
# what the schema calls invalid the server refuses.
_JSON_TYPES: list[tuple[type, tuple[type, ...], str]] = [
    (serializers.BooleanField, (bool,), "a boolean"),
    (serializers.IntegerField, (int, float), "an integer"),
    (serializers.ChoiceField, (str,), "a string"),
    (serializers.CharField, (str,), "a string"),
    (serializers.ListField, (list,), "an array"),
    (serializers.ListSerializer, (list,), "an array"),
    (serializers.DictField, (dict,), "an object"),
    (serializers.Serializer, (dict,), "an object"),
]


def _json_type_error(field, value) -> str | None:
    if value is None or isinstance(field, serializers.JSONField):
        return None
    for field_class, types, name in _JSON_TYPES:
        if isinstance(field, field_class):
            if isinstance(value, bool) and bool not in types:
                return name
            if isinstance(value, float) and int in types and not value.is_integer():
                return name
            if not isinstance(value, types):
                return name
            break
    # the items of a list of strings, the values of an object of strings (metadata)
    child = getattr(field, "child", None)
    if isinstance(child, serializers.CharField):
        items = (
            value if isinstance(value, list) else value.values() if isinstance(value, dict) else ()
        )
        if any(not isinstance(item, str) for item in items):
            return "an array of strings" if isinstance(value, list) else "an object of strings"
    return None


class StrictSerializer(serializers.Serializer):
    """A JSON body: refuses unknown parameters by name instead of silently ignoring a typo, and
    values of another JSON type than the field's (`parameter_invalid_type`)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {unknown[0]: [serializers.ErrorDetail("Unknown parameter.", code="unknown")]}
                )
            for name, value in data.items():
                expected = _json_type_error(self.fields[name], value)
                if expected:
                    raise serializers.ValidationError(
                        {
                            name: [
                                serializers.ErrorDetail(f"Must be {expected}.", code="invalid_type")
                            ]
                        }
                    )
        return super().to_internal_value(data)


def json_field(schema: dict, **kwargs) -> serializers.JSONField:
    """A JSONField whose value a service validates (so each failure keeps its own code), with
    the OpenAPI schema of what that service accepts. Null is refused unless allow_null."""
    field_class = extend_schema_field(schema)(type("TypedJSONField", (serializers.JSONField,), {}))
    return field_class(**kwargs)


CURRENCY_SCHEMA = {
    "type": "string",
    "pattern": "^[A-Za-z]{3}$",
    "description": "Three-letter ISO 4217 code, e.g. 'eur' (any case).",
}
COUNTRY_SCHEMA = {"type": "string", "pattern": "^[A-Za-z]{2}$"}


def amount_schema(*, minimum: int = 1, maximum: int | None = None) -> dict:
    schema = {"type": "integer", "minimum": minimum}
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


class MetadataField(serializers.DictField):
    """Stripe-style metadata: up to 50 string keys (<= 40 chars) with string values (<= 500)."""

    def __init__(self, **kwargs):
        super().__init__(child=serializers.CharField(allow_blank=True, max_length=500), **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if len(value) > 50:
            raise serializers.ValidationError("At most 50 metadata keys.", code="invalid")
        for key in value:
            if not key or len(key) > 40:
                raise serializers.ValidationError(
                    "Metadata keys must be 1 to 40 characters.", code="invalid"
                )
        return value


def parse_input(serializer_class, data, **kwargs) -> dict:
    """Validates a request body or query; failures become a 400 naming the param."""
    if data is None:
        data = {}
    if not isinstance(data, dict) and not hasattr(data, "getlist"):
        raise serializers.ValidationError(
            {
                "non_field_errors": [
                    serializers.ErrorDetail("The body must be a JSON object.", code="invalid")
                ]
            }
        )
    serializer = _reused(serializer_class, data) if not kwargs else None
    if serializer is None:
        serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# One serializer per class and thread, validating request after request: DRF builds a
# serializer's fields by deep-copying every declared field, which on the checkout's body cost
# more CPU than validating it. Its fields keep no state between validations; what the last
# one left (data, result, errors) is cleared first, and a thread never validates two bodies
# at once.
_serializers = threading.local()


def _reused(serializer_class, data):
    pool = _serializers.__dict__.setdefault("by_class", {})
    serializer = pool.get(serializer_class)
    if serializer is None:
        pool[serializer_class] = serializer_class(data=data)
        return pool[serializer_class]
    for attr in ("_validated_data", "_errors", "_data"):
        serializer.__dict__.pop(attr, None)
    serializer.initial_data = data
    return serializer


class TimestampField(serializers.IntegerField):
    """Unix seconds, from 0 to the last second of year 9999: larger values are refused here
    rather than overflowing `datetime.fromtimestamp` in the view."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", MAX_TIMESTAMP)
        super().__init__(**kwargs)


def timestamp_datetime(seconds: int | None) -> datetime | None:
    """A TimestampField's value as an aware datetime (None stays None)."""
    return datetime.fromtimestamp(seconds, tz=UTC) if seconds is not None else None


def parse_query(serializer_class, query_params, *, lists: tuple[str, ...] = ()) -> dict:
    """Validates a list's query string. Stripe-style `created[gte]=` is read as `created_gte`
    (and an error names the parameter as the client spelled it); the names in `lists` take
    every value (`expand[]=a&expand[]=b`), the others their last one."""
    data, spelled = {}, {}
    for key in query_params:
        name = key.replace("[", "_").replace("]", "").rstrip("_")
        spelled[name] = key
        values = query_params.getlist(key)
        data[name] = values if name in lists else values[-1]
    try:
        return parse_input(serializer_class, data)
    except serializers.ValidationError as exc:
        if isinstance(exc.detail, dict):
            exc.detail = {spelled.get(key, key): value for key, value in exc.detail.items()}
        raise
