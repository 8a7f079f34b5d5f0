from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.core.api.pagination import ListQuerySerializer
from apps.core.api.serializers import MetadataField, StrictSerializer, TimestampField
from apps.events.models import WebhookDelivery

# --------------------------------------------------------------------------- events


class EventListQuerySerializer(ListQuerySerializer):
    type = serializers.CharField(
        required=False,
        max_length=80,
        help_text="An event type, or a wildcard such as 'payment_intent.*'.",
    )
    object_id = serializers.CharField(
        required=False, max_length=40, help_text="Only events about this object."
    )
    created_gte = TimestampField(required=False, help_text="created[gte]: unix seconds")
    created_gt = TimestampField(required=False, help_text="created[gt]: unix seconds")
    created_lte = TimestampField(required=False, help_text="created[lte]: unix seconds")
    created_lt = TimestampField(required=False, help_text="created[lt]: unix seconds")


class EventDataOutputSerializer(serializers.Serializer):
    object = serializers.JSONField(help_text="The object as it was when the event happened.")
    previous_attributes = serializers.JSONField(
        help_text="The values of the attributes that changed, before the change."
    )


class EventRequestOutputSerializer(serializers.Serializer):
    id = serializers.CharField(allow_null=True, help_text="Request-Id of the API call.")
    idempotency_key = serializers.CharField(allow_null=True)


class EventOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    type = serializers.CharField()
    created = serializers.IntegerField()
    livemode = serializers.BooleanField()
    sequence = serializers.IntegerField(
        help_text="Per object, increasing: order events about one object by it."
    )
    data = EventDataOutputSerializer()
    request = EventRequestOutputSerializer()


class EventListOutputSerializer(serializers.Serializer):
    object = serializers.CharField()
    data = EventOutputSerializer(many=True)
    has_more = serializers.BooleanField()
    url = serializers.CharField()


# --------------------------------------------------------------------------- endpoints


class WebhookEndpointListQuerySerializer(ListQuerySerializer):
    pass


_URL_HELP = "Where events are POSTed: https (http to localhost in test mode)."


@extend_schema_field({"type": "string", "format": "uri", "maxLength": 2048})
class _UrlField(serializers.CharField):
    pass


class WebhookEndpointCreateInputSerializer(StrictSerializer):
    url = _UrlField(max_length=2048, trim_whitespace=False, help_text=_URL_HELP)
    enabled_events = serializers.ListField(
        child=serializers.CharField(max_length=80),
        allow_empty=False,
        max_length=100,
        help_text="Event types to send; '*' for all, 'payment_intent.*' for one object.",
    )
    description = serializers.CharField(required=False, max_length=500, allow_blank=True)
    metadata = MetadataField(required=False)


class WebhookEndpointUpdateInputSerializer(StrictSerializer):
    url = _UrlField(required=False, max_length=2048, trim_whitespace=False, help_text=_URL_HELP)
    enabled_events = serializers.ListField(
        child=serializers.CharField(max_length=80),
        allow_empty=False,
        max_length=100,
        required=False,
    )
    description = serializers.CharField(required=False, max_length=500, allow_blank=True)
    metadata = MetadataField(required=False)
    disabled = serializers.BooleanField(
        required=False, help_text="true stops deliveries; false resumes them."
    )


class WebhookEndpointOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    url = serializers.CharField()
    description = serializers.CharField(allow_null=True)
    enabled_events = serializers.ListField(child=serializers.CharField())
    status = serializers.ChoiceField(choices=["enabled", "disabled"])
    disabled_reason = serializers.CharField(allow_null=True)
    metadata = serializers.DictField(child=serializers.CharField())
    livemode = serializers.BooleanField()
    created = serializers.IntegerField()


class WebhookEndpointWithSecretOutputSerializer(WebhookEndpointOutputSerializer):
    secret = serializers.CharField(
        help_text="The whsec_… signing secret. Shown only in this response."
    )


class WebhookEndpointListOutputSerializer(serializers.Serializer):
    object = serializers.CharField()
    data = WebhookEndpointOutputSerializer(many=True)
    has_more = serializers.BooleanField()
    url = serializers.CharField()


class WebhookEndpointDeletedOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    deleted = serializers.BooleanField()


class WebhookEndpointRollSecretInputSerializer(StrictSerializer):
    expires_in = serializers.IntegerField(
        required=False,
        min_value=0,
        help_text="Seconds the old secret keeps signing (default 86400, 0 = stop now).",
    )


class WebhookEndpointReplayInputSerializer(StrictSerializer):
    since = TimestampField(help_text="Unix seconds: replay failed deliveries created since then.")


class WebhookEndpointReplayOutputSerializer(serializers.Serializer):
    object = serializers.CharField()
    webhook_endpoint = serializers.CharField()
    replayed = serializers.IntegerField()


# --------------------------------------------------------------------------- deliveries


class WebhookDeliveryListQuerySerializer(ListQuerySerializer):
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.values, required=False)


class WebhookDeliveryAttemptOutputSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    started = serializers.IntegerField()
    latency_ms = serializers.IntegerField()
    status_code = serializers.IntegerField(allow_null=True)
    response_body = serializers.CharField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    succeeded = serializers.BooleanField()


class WebhookDeliveryOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    webhook_endpoint = serializers.CharField()
    event = serializers.CharField()
    event_type = serializers.CharField()
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.values)
    attempt_count = serializers.IntegerField()
    next_attempt = serializers.IntegerField(allow_null=True)
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField(allow_null=True)
    delivered = serializers.IntegerField(allow_null=True)
    created = serializers.IntegerField()
    attempts = WebhookDeliveryAttemptOutputSerializer(many=True)
    livemode = serializers.BooleanField()


class WebhookDeliveryListOutputSerializer(serializers.Serializer):
    object = serializers.CharField()
    data = WebhookDeliveryOutputSerializer(many=True)
    has_more = serializers.BooleanField()
    url = serializers.CharField()
