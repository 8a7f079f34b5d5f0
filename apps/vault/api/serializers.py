from rest_framework import serializers

from apps.core.api.serializers import StrictSerializer, json_field

# What the vault accepts (apps/vault/services.py:_validate_card): a value outside these is
# refused there with its card code (invalid_number, invalid_expiry_month, ...), never echoed.
_NUMBER = {
    "oneOf": [
        {"type": "string", "pattern": r"^\s*(?:[0-9][ -]*){11,18}[0-9]\s*$"},
        {"type": "integer", "minimum": 10**11, "maximum": 10**19 - 1},
    ]
}
_MONTH = {
    "oneOf": [
        {"type": "integer", "minimum": 1, "maximum": 12},
        {"type": "string", "pattern": r"^\s*(?:0?[1-9]|1[0-2])\s*$"},
    ]
}
_YEAR = {
    "oneOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": r"^\s*[0-9]{1,4}\s*$"},
    ]
}
_CVC = {
    "oneOf": [
        {"type": "string", "pattern": "^(?:[0-9]{3,4})?$"},
        {"type": "integer", "minimum": 0, "maximum": 9999},
    ]
}


def _card_value(schema: dict, **kwargs):
    """A card value passed through untouched (null too, where allowed): the vault validates
    it and answers with a card code, never echoing the value back."""
    return json_field(schema, **kwargs)


class PaymentMethodCardInputSerializer(StrictSerializer):
    number = _card_value(_NUMBER, help_text="The card number; spaces and dashes are ignored.")
    exp_month = _card_value(_MONTH, help_text="1 to 12.")
    exp_year = _card_value(_YEAR, help_text="4-digit year (2-digit accepted).")
    cvc = _card_value(
        _CVC,
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
