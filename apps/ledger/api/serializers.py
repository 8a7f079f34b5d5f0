from rest_framework import serializers

from apps.core.api.pagination import ListQuerySerializer
from apps.core.api.serializers import TimestampField
from apps.ledger.models import JournalTransaction


class BalanceAmountOutputSerializer(serializers.Serializer):
    amount = serializers.IntegerField()
    currency = serializers.CharField()


class BalanceOutputSerializer(serializers.Serializer):
    object = serializers.CharField(default="balance")
    livemode = serializers.BooleanField()
    available = BalanceAmountOutputSerializer(
        many=True, help_text="Payable now: what a payout can take."
    )
    pending = BalanceAmountOutputSerializer(
        many=True, help_text="Captured, not settled yet (can be negative after refunds)."
    )


class BalanceTransactionListQuerySerializer(ListQuerySerializer):
    currency = serializers.CharField(required=False, max_length=3)
    type = serializers.ChoiceField(choices=JournalTransaction.Kind.values, required=False)
    source = serializers.CharField(
        required=False, max_length=80, help_text="The source object id: pi_…, re_…, po_…"
    )
    created_gte = TimestampField(required=False, help_text="created[gte]: unix seconds")
    created_lt = TimestampField(required=False, help_text="created[lt]: unix seconds")


class BalanceTransactionOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    type = serializers.ChoiceField(choices=JournalTransaction.Kind.values)
    amount = serializers.IntegerField(help_text="Gross: net + fee")
    fee = serializers.IntegerField(help_text="What the platform charged in this transaction")
    net = serializers.IntegerField(help_text="What your balance moved")
    currency = serializers.CharField()
    source = serializers.CharField(allow_null=True)
    source_type = serializers.CharField(allow_null=True)
    description = serializers.CharField(allow_null=True)
    created = serializers.IntegerField()


class BalanceTransactionListOutputSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = BalanceTransactionOutputSerializer(many=True)
    has_more = serializers.BooleanField()
    url = serializers.CharField()
