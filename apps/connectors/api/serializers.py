from rest_framework import serializers

from apps.connectors.endpoints import BASE_URL_REFUSED
from apps.core.api.serializers import (
    COUNTRY_SCHEMA,
    CURRENCY_SCHEMA,
    StrictSerializer,
    json_field,
)

_CREDENTIALS = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": {"type": "string"},
}
_CURRENCIES = {"type": "array", "minItems": 1, "items": CURRENCY_SCHEMA}
_BRANDS = {
    "type": "array",
    "items": {
        "type": "string",
        "description": "visa, mastercard, amex, discover, jcb, diners, unionpay or unknown "
        "(any case)",
    },
}
_COUNTRIES = {"type": "array", "items": COUNTRY_SCHEMA}
_FEE_SCHEDULE = {
    "type": "array",
    "items": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "brand": {"type": "string", "description": "'*' (default) or a card brand"},
            "region": {
                "type": "string",
                "description": "'*' (default), 'eea', 'non_eea' or a country code",
            },
            "currency": {"type": "string", "description": "'*' (default) or an ISO 4217 code"},
            "fixed": {"type": "integer", "minimum": 0, "maximum": 10**9},
            "percent_bps": {"type": "integer", "minimum": 0, "maximum": 10_000},
            "kind": {
                "type": "string",
                "enum": ["payment", "dispute"],
                "description": "'payment' (default) or 'dispute': the PSP's fee per dispute",
            },
        },
    },
}

ENDPOINT_HELP = (
    "Which of the platform's endpoints for the connector type and mode receives its requests: "
    "`production` (live mode: the PSP's production API), `test` (test mode: the PSP's test API) "
    "or `simulator` (test mode, where the platform runs its PSP simulator). Default: production "
    "in live mode, test in test mode. A connector never names a URL: where card data goes is "
    "the platform's choice."
)
LIVE_URL_PREFIX_HELP = (
    "Adyen live connectors only, and required there: the company's live URL prefix from the "
    "Adyen Customer Area (Developers, API URLs), e.g. `1797a841fbb37ca7-AdyenDemo`; requests go "
    "to https://{prefix}-checkout-live.adyenpayments.com/checkout."
)


class _RefusesBaseUrl:
    """`base_url` was once accepted: refuse it by name, saying what replaced it."""

    def to_internal_value(self, data):
        if isinstance(data, dict) and "base_url" in data:
            raise serializers.ValidationError(
                {"base_url": [serializers.ErrorDetail(BASE_URL_REFUSED, code="unknown")]}
            )
        return super().to_internal_value(data)


class ConnectorCreateInputSerializer(_RefusesBaseUrl, StrictSerializer):
    name = serializers.CharField(max_length=100)
    connector_type = serializers.CharField(max_length=20, help_text="stripe | adyen")
    endpoint = serializers.ChoiceField(
        choices=["production", "test", "simulator"], required=False, help_text=ENDPOINT_HELP
    )
    live_url_prefix = serializers.CharField(
        required=False, max_length=49, allow_blank=True, help_text=LIVE_URL_PREFIX_HELP
    )
    credentials = json_field(
        _CREDENTIALS,
        help_text='PSP credentials, e.g. {"api_key": "sk_…", "webhook_secret": "whsec_…"}; '
        "stored encrypted, never returned.",
    )
    supported_currencies = json_field(_CURRENCIES, help_text='At least one, e.g. ["eur", "usd"].')
    supported_brands = json_field(_BRANDS, required=False, help_text="[] = every brand.")
    supported_countries = json_field(
        _COUNTRIES, required=False, help_text="Issuer countries; [] = all."
    )
    fee_schedule = json_field(
        _FEE_SCHEDULE,
        required=False,
        help_text='[{"brand", "region", "currency", "fixed", "percent_bps"}]',
    )
    priority = serializers.IntegerField(required=False, min_value=0, max_value=10_000)
    enabled = serializers.BooleanField(required=False)
    authorization_window_days = serializers.IntegerField(required=False, min_value=0, max_value=31)
    settlement_delay_days = serializers.IntegerField(required=False, min_value=0, max_value=31)
    connect_timeout_ms = serializers.IntegerField(required=False, min_value=100, max_value=60_000)
    read_timeout_ms = serializers.IntegerField(required=False, min_value=100, max_value=60_000)


class ConnectorUpdateInputSerializer(_RefusesBaseUrl, StrictSerializer):
    name = serializers.CharField(required=False, max_length=100)
    endpoint = serializers.ChoiceField(
        choices=["production", "test", "simulator"], required=False, help_text=ENDPOINT_HELP
    )
    live_url_prefix = serializers.CharField(
        required=False, max_length=49, allow_blank=True, help_text=LIVE_URL_PREFIX_HELP
    )
    credentials = json_field(
        _CREDENTIALS, required=False, help_text="Replaces the stored credentials."
    )
    supported_currencies = json_field(_CURRENCIES, required=False)
    supported_brands = json_field(_BRANDS, required=False)
    supported_countries = json_field(_COUNTRIES, required=False)
    fee_schedule = json_field(_FEE_SCHEDULE, required=False)
    priority = serializers.IntegerField(required=False, min_value=0, max_value=10_000)
    enabled = serializers.BooleanField(required=False)
    authorization_window_days = serializers.IntegerField(required=False, min_value=0, max_value=31)
    settlement_delay_days = serializers.IntegerField(required=False, min_value=0, max_value=31)
    connect_timeout_ms = serializers.IntegerField(required=False, min_value=100, max_value=60_000)
    read_timeout_ms = serializers.IntegerField(required=False, min_value=100, max_value=60_000)


class ConnectorHealthOutputSerializer(serializers.Serializer):
    breaker = serializers.CharField()
    consecutive_failures = serializers.IntegerField()
    calls = serializers.IntegerField(required=False)
    success_rate = serializers.FloatField(allow_null=True, required=False)
    error_rate = serializers.FloatField(allow_null=True, required=False)
    p95_latency_ms = serializers.IntegerField(allow_null=True, required=False)
    window_seconds = serializers.IntegerField(required=False)


class ConnectorOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    name = serializers.CharField()
    connector_type = serializers.CharField()
    endpoint = serializers.CharField(help_text=ENDPOINT_HELP)
    endpoint_url = serializers.CharField(
        allow_null=True,
        help_text="Where the platform sends this connector's requests (read-only); null when "
        "the connector no longer fits the platform's configuration and is refused.",
    )
    live_url_prefix = serializers.CharField(allow_null=True, help_text=LIVE_URL_PREFIX_HELP)
    credentials_hint = serializers.CharField()
    enabled = serializers.BooleanField()
    disabled_reason = serializers.CharField(allow_null=True)
    priority = serializers.IntegerField()
    supported_currencies = serializers.ListField(child=serializers.CharField())
    supported_brands = serializers.ListField(child=serializers.CharField())
    supported_countries = serializers.ListField(child=serializers.CharField())
    fee_schedule = serializers.JSONField()
    authorization_window_days = serializers.IntegerField()
    settlement_delay_days = serializers.IntegerField()
    connect_timeout_ms = serializers.IntegerField()
    read_timeout_ms = serializers.IntegerField()
    health = ConnectorHealthOutputSerializer(allow_null=True)
    livemode = serializers.BooleanField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()


class ConnectorListOutputSerializer(serializers.Serializer):
    object = serializers.CharField()
    data = ConnectorOutputSerializer(many=True)
    has_more = serializers.BooleanField()
    url = serializers.CharField()
