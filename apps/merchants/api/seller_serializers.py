"""Input and output shapes of `/v1/sellers`. The bank account number goes in, never out."""

from __future__ import annotations

from rest_framework import serializers

from apps.core.api.pagination import ListQuerySerializer
from apps.core.api.serializers import MetadataField, StrictSerializer
from apps.merchants.models import Seller


class SellerPayoutScheduleInputSerializer(StrictSerializer):
    interval = serializers.ChoiceField(choices=Seller.PayoutInterval.choices)
    weekly_anchor = serializers.ChoiceField(choices=Seller.Weekday.choices, required=False)


class SellerBankAccountInputSerializer(StrictSerializer):
    country = serializers.CharField(max_length=2, required=False)
    currency = serializers.CharField(max_length=3)
    account_holder_name = serializers.CharField(max_length=200, required=False)
    account_number = serializers.CharField(
        max_length=42, help_text="Digits, or an IBAN where the country uses IBANs."
    )
    routing_number = serializers.CharField(
        max_length=12,
        required=False,
        allow_blank=True,
        help_text="US: the 9-digit ABA routing number; GB: the 6-digit sort code.",
    )


class SellerCreateInputSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    email = serializers.EmailField(required=False, allow_blank=True)
    country = serializers.CharField(max_length=2)
    payout_schedule = SellerPayoutScheduleInputSerializer(required=False)
    bank_account = SellerBankAccountInputSerializer()
    metadata = MetadataField(required=False)


class SellerListQuerySerializer(ListQuerySerializer):
    pass


class SellerPayoutScheduleOutputSerializer(serializers.Serializer):
    interval = serializers.CharField(source="payout_interval")
    weekly_anchor = serializers.SerializerMethodField()

    def get_weekly_anchor(self, obj) -> str | None:
        return obj.payout_weekly_anchor if obj.payout_interval == "weekly" else None


class SellerBankAccountOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="bank_token")
    object = serializers.SerializerMethodField()
    country = serializers.CharField(source="bank_country")
    currency = serializers.CharField(source="bank_currency")
    account_holder_name = serializers.CharField(source="bank_account_holder_name")
    last4 = serializers.CharField(source="bank_last4")
    fingerprint = serializers.CharField(source="bank_fingerprint")

    def get_object(self, obj) -> str:
        return "bank_account"


class SellerOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    object = serializers.SerializerMethodField()
    livemode = serializers.BooleanField()
    name = serializers.CharField()
    email = serializers.CharField()
    country = serializers.CharField()
    payout_schedule = serializers.SerializerMethodField()
    bank_account = serializers.SerializerMethodField()
    metadata = serializers.DictField(child=serializers.CharField())
    created = serializers.SerializerMethodField()

    def get_object(self, obj) -> str:
        return "seller"

    def get_payout_schedule(self, obj) -> SellerPayoutScheduleOutputSerializer:
        return SellerPayoutScheduleOutputSerializer(obj).data

    def get_bank_account(self, obj) -> SellerBankAccountOutputSerializer:
        return SellerBankAccountOutputSerializer(obj).data

    def get_created(self, obj) -> int:
        return int(obj.created_at.timestamp())


class SellerListOutputSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = SellerOutputSerializer(many=True)
    has_more = serializers.BooleanField()
    url = serializers.CharField()
