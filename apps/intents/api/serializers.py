from django.conf import settings
from rest_framework import serializers

from apps.core.api.pagination import ListQuerySerializer
from apps.core.api.serializers import (
    CURRENCY_SCHEMA,
    MetadataField,
    StrictSerializer,
    TimestampField,
    amount_schema,
    json_field,
)
from apps.intents.models import IntentStatus


class PaymentIntentSplitInputSerializer(StrictSerializer):
    seller = serializers.CharField(max_length=40)
    amount = json_field(
        amount_schema(maximum=settings.MAX_PAYMENT_AMOUNT),
        help_text="The seller's share, in minor units.",
    )


class PaymentMethodOptionsCardInputSerializer(StrictSerializer):
    request_three_d_secure = serializers.ChoiceField(
        choices=["automatic", "any", "challenge"],
        required=False,
        help_text="automatic (default): the platform decides (rules, score, SCA); any: ask for "
        "3-D Secure; challenge: ask for a challenge. docs/risk.md.",
    )
    sca_exemption = serializers.ChoiceField(
        choices=["low_value", "transaction_risk_analysis", "merchant_initiated"],
        required=False,
        help_text="Claim this SCA exemption (refused where it is not allowed).",
    )


class PaymentMethodOptionsInputSerializer(StrictSerializer):
    card = PaymentMethodOptionsCardInputSerializer(required=False)


class PaymentIntentCreateInputSerializer(StrictSerializer):
    # amount and currency are validated by apps.core.money so that each failure has its own code
    amount = json_field(
        amount_schema(maximum=settings.MAX_PAYMENT_AMOUNT),
        help_text="Positive integer in the currency's minor unit.",
    )
    currency = json_field(CURRENCY_SCHEMA, help_text="Three-letter ISO 4217 code, e.g. 'eur'.")
    capture_method = serializers.ChoiceField(choices=["automatic", "manual"], required=False)
    payment_method = serializers.CharField(required=False, max_length=40)
    confirm = serializers.BooleanField(required=False, default=False)
    order_id = serializers.CharField(required=False, max_length=100, allow_blank=True)
    customer_email = serializers.EmailField(required=False, allow_blank=True)
    description = serializers.CharField(required=False, max_length=1000, allow_blank=True)
    return_url = serializers.CharField(
        required=False,
        max_length=2000,
        allow_blank=True,
        help_text="Where the shopper's browser goes after a 3-D Secure redirect, with "
        "`payment_intent` and `redirect_status` added to the query. https (http in test mode).",
    )
    metadata = MetadataField(required=False)
    splits = PaymentIntentSplitInputSerializer(
        many=True,
        required=False,
        max_length=50,
        help_text="Marketplace: each seller's share, credited to its balance on capture.",
    )
    platform_fee_amount = json_field(
        amount_schema(minimum=0),
        required=False,
        help_text="Marketplace: the platform's share; splits plus this at most the amount.",
    )
    payment_method_options = PaymentMethodOptionsInputSerializer(required=False)


class PaymentIntentConfirmInputSerializer(StrictSerializer):
    payment_method = serializers.CharField(required=False, max_length=40)


class PaymentIntentCaptureInputSerializer(StrictSerializer):
    amount_to_capture = json_field(
        amount_schema(maximum=settings.MAX_PAYMENT_AMOUNT),
        required=False,
        help_text="At most amount_capturable; default: all of it.",
    )


class PaymentIntentCancelInputSerializer(StrictSerializer):
    cancellation_reason = serializers.CharField(required=False, max_length=40)


class PaymentIntentListQuerySerializer(ListQuerySerializer):
    status = serializers.ChoiceField(choices=IntentStatus.values, required=False)
    order_id = serializers.CharField(required=False, max_length=100)
    created_gte = TimestampField(required=False, help_text="created[gte]: unix seconds")
    created_lte = TimestampField(required=False, help_text="created[lte]: unix seconds")
    expand = serializers.ListField(
        child=serializers.ChoiceField(choices=["attempts"]),
        required=False,
        help_text="expand[]=attempts: each intent with its attempts and their routing traces",
    )


class PaymentIntentRetrieveQuerySerializer(serializers.Serializer):
    expand = serializers.ListField(
        child=serializers.ChoiceField(choices=["attempts"]), required=False
    )


class RadarRuleRefSerializer(serializers.Serializer):
    id = serializers.CharField()
    action = serializers.CharField()
    predicate = serializers.CharField()


class RadarOutcomeSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["authorized", "manual_review", "blocked"])
    risk_level = serializers.ChoiceField(choices=["normal", "elevated", "highest"])
    risk_score = serializers.IntegerField(min_value=0, max_value=100)
    rule = RadarRuleRefSerializer(allow_null=True)
    reason = serializers.CharField(allow_null=True)
    seller_message = serializers.CharField()


class PaymentAttemptOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    sequence = serializers.IntegerField()
    connector = serializers.CharField()
    connector_name = serializers.CharField()
    amount = serializers.IntegerField()
    currency = serializers.CharField()
    outcome = serializers.CharField()
    decline_code = serializers.CharField(allow_null=True)
    raw_code = serializers.CharField(allow_null=True)
    raw_message = serializers.CharField(allow_null=True)
    psp_reference = serializers.CharField(allow_null=True)
    latency_ms = serializers.IntegerField(allow_null=True)
    routing = serializers.JSONField(allow_null=True)
    risk_outcome = RadarOutcomeSerializer(
        allow_null=True, help_text="Radar's outcome for the payment (docs/risk.md)."
    )
    three_d_secure = serializers.JSONField(
        allow_null=True,
        help_text="SCA: requested (any|challenge|''), reason, exemption, sca_applies, and "
        "after the PSP answered: result, liability_shift.",
    )
    created = serializers.IntegerField()
    completed = serializers.IntegerField(allow_null=True)


class AmountDetailsOutputSerializer(serializers.Serializer):
    surcharge = serializers.IntegerField(
        help_text="The surcharge included in `amount` (minor units), set at confirm from the "
        "merchant's surcharge rules; 0 when none applies."
    )


class PaymentIntentOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    amount = serializers.IntegerField()
    amount_details = AmountDetailsOutputSerializer()
    currency = serializers.CharField()
    status = serializers.ChoiceField(choices=IntentStatus.values)
    capture_method = serializers.CharField()
    amount_capturable = serializers.IntegerField()
    amount_received = serializers.IntegerField()
    amount_refunded = serializers.IntegerField()
    amount_disputed = serializers.IntegerField(
        help_text="Taken back by disputes (withdrawn by the PSP and not reinstated)"
    )
    disputed = serializers.BooleanField(
        help_text="A dispute is open: refunds are refused (GET /v1/disputes?payment_intent=…)"
    )
    payment_method = serializers.CharField(allow_null=True)
    connector = serializers.CharField(allow_null=True)
    psp_reference = serializers.CharField(allow_null=True)
    order_id = serializers.CharField(allow_null=True)
    customer_email = serializers.CharField(allow_null=True)
    description = serializers.CharField(allow_null=True)
    return_url = serializers.CharField(allow_null=True)
    metadata = serializers.DictField(child=serializers.CharField())
    splits = serializers.ListField(child=serializers.DictField())
    platform_fee_amount = serializers.IntegerField()
    last_payment_error = serializers.JSONField(allow_null=True)
    next_action = serializers.JSONField(allow_null=True)
    payment_method_options = serializers.JSONField()
    outcome = RadarOutcomeSerializer(
        allow_null=True,
        help_text="Radar's outcome (Stripe's shape): null until the payment is confirmed.",
    )
    cancellation_reason = serializers.CharField(allow_null=True)
    livemode = serializers.BooleanField()
    created = serializers.IntegerField()
    canceled_at = serializers.IntegerField(allow_null=True)
    attempts = PaymentAttemptOutputSerializer(many=True, required=False)


class PaymentIntentListOutputSerializer(serializers.Serializer):
    object = serializers.CharField()
    data = PaymentIntentOutputSerializer(many=True)
    has_more = serializers.BooleanField()
    url = serializers.CharField()


class RefundCreateInputSerializer(StrictSerializer):
    payment_intent = serializers.CharField(max_length=40)
    amount = json_field(
        amount_schema(maximum=settings.MAX_PAYMENT_AMOUNT),
        required=False,
        help_text="Default: what is left to refund.",
    )
    reason = serializers.CharField(required=False, max_length=40)
    metadata = MetadataField(required=False)


class RefundListQuerySerializer(ListQuerySerializer):
    payment_intent = serializers.CharField(required=False, max_length=40)


class RefundOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    payment_intent = serializers.CharField()
    amount = serializers.IntegerField()
    currency = serializers.CharField()
    status = serializers.CharField()
    reason = serializers.CharField(allow_null=True)
    failure_reason = serializers.CharField(allow_null=True)
    psp_reference = serializers.CharField(allow_null=True)
    metadata = serializers.DictField(child=serializers.CharField())
    livemode = serializers.BooleanField()
    created = serializers.IntegerField()


class RefundListOutputSerializer(serializers.Serializer):
    object = serializers.CharField()
    data = RefundOutputSerializer(many=True)
    has_more = serializers.BooleanField()
    url = serializers.CharField()
