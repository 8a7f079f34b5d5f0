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
from apps.payouts.models import PayoutStatus
from apps.payouts.services import DEFAULT_MAX_PAYOUT_AMOUNT


class PayoutCreateInputSerializer(StrictSerializer):
    # amount and currency are validated by apps.core.money so that each failure has its own code
    amount = json_field(
        amount_schema(maximum=getattr(settings, "PAYOUT_MAX_AMOUNT", DEFAULT_MAX_PAYOUT_AMOUNT)),
        help_text="Positive integer in the currency's minor unit.",
    )
    currency = json_field(CURRENCY_SCHEMA, help_text="Three-letter ISO 4217 code, e.g. 'eur'.")
    seller = serializers.CharField(
        required=False,
        max_length=40,
        help_text="Pay out this seller's balance (sel_…); omit for your own balance.",
    )
    description = serializers.CharField(required=False, max_length=255, allow_blank=True)
    metadata = MetadataField(required=False)


class PayoutListQuerySerializer(ListQuerySerializer):
    status = serializers.ChoiceField(choices=PayoutStatus.values, required=False)
    seller = serializers.CharField(
        required=False, max_length=40, help_text="sel_…, or 'none' for your own payouts"
    )
    created_gte = TimestampField(required=False, help_text="created[gte]: unix seconds")
    created_lte = TimestampField(required=False, help_text="created[lte]: unix seconds")


class PayoutOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    livemode = serializers.BooleanField()
    amount = serializers.IntegerField()
    currency = serializers.CharField()
    status = serializers.ChoiceField(choices=PayoutStatus.values)
    seller = serializers.CharField(allow_null=True)
    automatic = serializers.BooleanField()
    destination = serializers.CharField(allow_null=True, help_text="The bank account token ba_…")
    destination_last4 = serializers.CharField(allow_null=True)
    description = serializers.CharField(allow_null=True)
    metadata = serializers.DictField(child=serializers.CharField())
    balance_transaction = serializers.CharField(
        allow_null=True, help_text="The ledger journal (txn_…) of the current round"
    )
    failure_code = serializers.CharField(allow_null=True)
    failure_message = serializers.CharField(allow_null=True)
    arrival_date = serializers.IntegerField(allow_null=True)
    created = serializers.IntegerField()


class PayoutListOutputSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = PayoutOutputSerializer(many=True)
    has_more = serializers.BooleanField()
    url = serializers.CharField()
