from rest_framework import serializers

from apps.core.api.pagination import ListQuerySerializer
from apps.core.api.serializers import MetadataField, StrictSerializer
from apps.risk.models import ItemType, RuleAction

# Predicates and item values are validated by the services (apps/risk/lang.py), so the API and
# the admin give the same errors with the same `param`.


class ValueListCreateInputSerializer(StrictSerializer):
    alias = serializers.CharField(
        max_length=100, help_text="Named in rules as @alias: letters, digits, underscores."
    )
    name = serializers.CharField(max_length=100)
    item_type = serializers.ChoiceField(choices=ItemType.values, required=False, default="string")
    metadata = MetadataField(required=False)


class ValueListListQuerySerializer(ListQuerySerializer):
    alias = serializers.CharField(required=False, max_length=100)


class ValueListItemCreateInputSerializer(StrictSerializer):
    value_list = serializers.CharField(max_length=40)
    value = serializers.CharField(max_length=800)


class ValueListItemListQuerySerializer(ListQuerySerializer):
    value_list = serializers.CharField(max_length=40)
    value = serializers.CharField(required=False, max_length=800)


class RuleCreateInputSerializer(StrictSerializer):
    action = serializers.ChoiceField(choices=RuleAction.values)
    predicate = serializers.CharField(
        max_length=2000,
        help_text="e.g. `:card_country: != :ip_country: and :amount: > 50000` (docs/risk.md).",
    )
    description = serializers.CharField(required=False, max_length=500, allow_blank=True)
    enabled = serializers.BooleanField(required=False, default=True)


class RuleUpdateInputSerializer(StrictSerializer):
    action = serializers.ChoiceField(choices=RuleAction.values, required=False)
    predicate = serializers.CharField(required=False, max_length=2000)
    description = serializers.CharField(required=False, max_length=500, allow_blank=True)
    enabled = serializers.BooleanField(required=False)
    note = serializers.CharField(required=False, max_length=500, allow_blank=True)


class RuleListQuerySerializer(ListQuerySerializer):
    enabled = serializers.BooleanField(required=False)


class RuleDisableInputSerializer(StrictSerializer):
    pass


class RuleTestInputSerializer(StrictSerializer):
    days = serializers.IntegerField(required=False, min_value=1, max_value=30, default=30)


class ValueListItemOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    created = serializers.IntegerField()
    created_by = serializers.CharField()
    livemode = serializers.BooleanField()
    value = serializers.CharField()
    value_list = serializers.CharField()


class ValueListItemListOutputSerializer(serializers.Serializer):
    object = serializers.CharField()
    data = ValueListItemOutputSerializer(many=True)
    has_more = serializers.BooleanField()
    url = serializers.CharField()


class ValueListOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    alias = serializers.CharField()
    created = serializers.IntegerField()
    created_by = serializers.CharField()
    item_type = serializers.ChoiceField(choices=ItemType.values)
    list_items = ValueListItemListOutputSerializer()
    livemode = serializers.BooleanField()
    metadata = serializers.DictField(child=serializers.CharField())
    name = serializers.CharField()
    platform = serializers.BooleanField()


class ValueListListOutputSerializer(serializers.Serializer):
    object = serializers.CharField()
    data = ValueListOutputSerializer(many=True)
    has_more = serializers.BooleanField()
    url = serializers.CharField()


class RadarDeletedOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    deleted = serializers.BooleanField()


class RuleOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    action = serializers.ChoiceField(choices=RuleAction.values)
    predicate = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    enabled = serializers.BooleanField()
    default_rule = serializers.CharField(allow_null=True)
    version = serializers.IntegerField()
    livemode = serializers.BooleanField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()


class RuleListOutputSerializer(serializers.Serializer):
    object = serializers.CharField()
    data = RuleOutputSerializer(many=True)
    has_more = serializers.BooleanField()
    url = serializers.CharField()


class RuleTestOutputSerializer(serializers.Serializer):
    object = serializers.CharField()
    rule = serializers.CharField()
    action = serializers.CharField()
    days = serializers.IntegerField()
    payments = serializers.IntegerField()
    matched = serializers.IntegerField()
    would_block = serializers.IntegerField()
    would_review = serializers.IntegerField()
    would_request_3ds = serializers.IntegerField()
    would_allow = serializers.IntegerField()
    examples = serializers.ListField(child=serializers.CharField())
