from rest_framework import serializers

from apps.core.api.serializers import StrictSerializer, json_field

_RULES = {"type": "array", "items": {"type": "object", "additionalProperties": {}}}
_FALLBACK = {"type": "array", "items": {"type": "string", "description": "A connector id"}}

# Nested shapes (rules, fee schedules, credentials) are JSON here and validated by the services,
# so the API and the admin give the same errors with the same `param`.


class RoutingProfileCreateInputSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    rules = json_field(
        _RULES,
        help_text='Ordered, first match wins: [{"name", "match": "all"|"any", "conditions": '
        '[{"field", "op", "value"}], "strategy": {"type", ...}}]. See docs/routing.md.',
    )
    fallback = json_field(
        _FALLBACK, required=False, help_text="Connector ids tried after the rule's own."
    )
    note = serializers.CharField(required=False, max_length=500, allow_blank=True)
    activate = serializers.BooleanField(required=False, default=False)


class RoutingProfileUpdateInputSerializer(StrictSerializer):
    name = serializers.CharField(required=False, max_length=100)
    rules = json_field(
        _RULES, required=False, help_text="Given: a new version is recorded (an edit)."
    )
    fallback = json_field(_FALLBACK, required=False)
    note = serializers.CharField(required=False, max_length=500, allow_blank=True)
    activate = serializers.BooleanField(required=False, default=False)


class RoutingProfileVersionCreateInputSerializer(StrictSerializer):
    rules = json_field(_RULES)
    fallback = json_field(_FALLBACK, required=False)
    note = serializers.CharField(required=False, max_length=500, allow_blank=True)


class RoutingProfileActivateInputSerializer(StrictSerializer):
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="Default: the latest version."
    )


class RoutingProfileDeactivateInputSerializer(StrictSerializer):
    pass


class RoutingProfileVersionOutputSerializer(serializers.Serializer):
    object = serializers.CharField()
    profile = serializers.CharField()
    version = serializers.IntegerField()
    active = serializers.BooleanField()
    rules = serializers.JSONField()
    fallback = serializers.ListField(child=serializers.CharField())
    note = serializers.CharField()
    created_by = serializers.CharField()
    created = serializers.IntegerField()


class RoutingProfileOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    name = serializers.CharField()
    active = serializers.BooleanField()
    active_version = serializers.IntegerField(allow_null=True)
    latest_version = serializers.IntegerField(allow_null=True)
    latest = RoutingProfileVersionOutputSerializer(allow_null=True)
    activated = serializers.IntegerField(allow_null=True)
    livemode = serializers.BooleanField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()


class RoutingProfileListOutputSerializer(serializers.Serializer):
    object = serializers.CharField()
    data = RoutingProfileOutputSerializer(many=True)
    has_more = serializers.BooleanField()
    url = serializers.CharField()


class RoutingProfileVersionListOutputSerializer(serializers.Serializer):
    object = serializers.CharField()
    data = RoutingProfileVersionOutputSerializer(many=True)
    has_more = serializers.BooleanField()
    url = serializers.CharField()
