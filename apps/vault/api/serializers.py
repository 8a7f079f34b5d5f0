from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.core.api.serializers import StrictSerializer


@extend_schema_field(OpenApiTypes.STR)
class _CardValueField(serializers.Field):
    """Passes a card value through untouched: the vault validates it and answers with a card
    code (`invalid_number`, `invalid_expiry_month`, …) and never echoes the value back."""

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return value


class PaymentMethodCardInputSerializer(StrictSerializer):
    number = _CardValueField(help_text="The card number; spaces and dashes are ignored.")
    exp_month = _CardValueField(help_text="1 to 12.")
    exp_year = _CardValueField(help_text="4-digit year (2-digit accepted).")
    cvc = _CardValueField(
        required=False,
        allow_null=True,
        help_text="3 digits (4 for amex). Kept encrypted in Redis until the first authorization, "
        "never stored in the database.",
    )


class PaymentMethodBillingDetailsInputSerializer(StrictSerializer):
    name = serializers.CharField(required=False, max_length=200, allow_blank=True)
    email = serializers.EmailField(required=False, allow_blank=True)


class PaymentMethodCreateInputSerializer(StrictSerializer):
    type = serializers.ChoiceField(
        choices=["card"],
        # the default message echoes the value; whatever was sent there stays out of responses
        error_messages={"invalid_choice": "Unsupported payment method type: use 'card'."},
    )
    card = PaymentMethodCardInputSerializer()
    billing_details = PaymentMethodBillingDetailsInputSerializer(required=False)


class PaymentMethodCardOutputSerializer(serializers.Serializer):
    brand = serializers.CharField()
    last4 = serializers.CharField()
    exp_month = serializers.IntegerField()
    exp_year = serializers.IntegerField()
    funding = serializers.CharField()
    country = serializers.CharField(
        source="issuer_country", allow_null=True, help_text="Issuer country, null when unknown."
    )
    fingerprint = serializers.CharField()

    def to_representation(self, instance):
        body = super().to_representation(instance)
        body["country"] = body["country"] or None
        return body


class PaymentMethodBillingDetailsOutputSerializer(serializers.Serializer):
    name = serializers.CharField(source="billing_name", allow_null=True)
    email = serializers.CharField(source="billing_email", allow_null=True)

    def to_representation(self, instance):
        return {key: value or None for key, value in super().to_representation(instance).items()}


class PaymentMethodOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    object = serializers.SerializerMethodField()
    type = serializers.CharField()
    card = PaymentMethodCardOutputSerializer(source="*")
    billing_details = PaymentMethodBillingDetailsOutputSerializer(source="*")
    created = serializers.SerializerMethodField()
    livemode = serializers.BooleanField()

    def get_object(self, obj) -> str:
        return "payment_method"

    def get_created(self, obj) -> int:
        return int(obj.created_at.timestamp())
