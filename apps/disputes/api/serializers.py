from rest_framework import serializers

from apps.core.api.pagination import ListQuerySerializer
from apps.core.api.serializers import StrictSerializer, TimestampField, json_field
from apps.disputes.models import DisputeStage, DisputeStatus
from apps.disputes.representations import EVIDENCE_FIELDS, EVIDENCE_FILE_FIELDS

EVIDENCE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "description": "Stripe's evidence fields: text (150,000 characters in total) or, for "
    "the document fields, a file id (file_…) uploaded with purpose dispute_evidence. An empty "
    "string or null removes a field.",
    "properties": {
        name: {
            "type": "string",
            "nullable": True,
            "maxLength": 150_000,
            **({"description": "file_… id"} if name in EVIDENCE_FILE_FIELDS else {}),
        }
        for name in EVIDENCE_FIELDS
    },
}


class DisputeListQuerySerializer(ListQuerySerializer):
    status = serializers.ChoiceField(choices=DisputeStatus.values, required=False)
    stage = serializers.ChoiceField(choices=DisputeStage.values, required=False)
    payment_intent = serializers.CharField(required=False, max_length=40)
    connector = serializers.CharField(required=False, max_length=40)
    created_gte = TimestampField(required=False, help_text="created[gte]: unix seconds")
    created_lte = TimestampField(required=False, help_text="created[lte]: unix seconds")


class DisputeUpdateInputSerializer(StrictSerializer):
    evidence = json_field(EVIDENCE_SCHEMA, required=False)
    submit = serializers.BooleanField(
        required=False,
        default=False,
        help_text="false (default) stages the evidence; true sends it to the PSP, once",
    )


class DisputeCloseInputSerializer(StrictSerializer):
    pass


class FileCreateInputSerializer(StrictSerializer):
    purpose = serializers.ChoiceField(choices=["dispute_evidence"])
    file = serializers.CharField(
        help_text="The file's bytes in base64 (PDF, JPEG or PNG, checked by content; at most "
        "700,000 bytes decoded)",
        max_length=1_000_000,
    )
    filename = serializers.CharField(required=False, max_length=255, allow_blank=True)


class DisputePspSerializer(serializers.Serializer):
    dispute_id = serializers.CharField()
    status = serializers.CharField(allow_null=True)
    event_code = serializers.CharField(allow_null=True)


class DisputeEvidenceDetailsSerializer(serializers.Serializer):
    due_by = serializers.IntegerField(allow_null=True)
    has_evidence = serializers.BooleanField()
    submission_count = serializers.IntegerField()
    submitted_at = serializers.IntegerField(allow_null=True)
    reminder = serializers.ChoiceField(choices=["72h", "24h"], allow_null=True)


class DisputeBalanceSerializer(serializers.Serializer):
    funds_withdrawn = serializers.BooleanField()
    amount_withdrawn = serializers.IntegerField()
    fees = serializers.IntegerField()


class DisputeEvidenceOutputSerializer(serializers.Serializer):
    pass


for _name in EVIDENCE_FIELDS:
    DisputeEvidenceOutputSerializer._declared_fields[_name] = serializers.CharField(allow_null=True)


class DisputeOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    livemode = serializers.BooleanField()
    amount = serializers.IntegerField()
    currency = serializers.CharField()
    payment_intent = serializers.CharField()
    connector = serializers.CharField()
    stage = serializers.ChoiceField(choices=DisputeStage.values)
    status = serializers.ChoiceField(choices=DisputeStatus.values)
    reason = serializers.CharField()
    network_reason_code = serializers.CharField(allow_null=True)
    is_charge_refundable = serializers.BooleanField()
    psp = DisputePspSerializer()
    evidence = DisputeEvidenceOutputSerializer()
    evidence_details = DisputeEvidenceDetailsSerializer()
    balance = DisputeBalanceSerializer()
    closed_at = serializers.IntegerField(allow_null=True)
    created = serializers.IntegerField()


class DisputeListOutputSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = DisputeOutputSerializer(many=True)
    has_more = serializers.BooleanField()
    url = serializers.CharField()


class FileOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    livemode = serializers.BooleanField()
    purpose = serializers.CharField()
    filename = serializers.CharField(allow_null=True)
    type = serializers.ChoiceField(choices=["pdf", "jpg", "png"])
    size = serializers.IntegerField()
    created = serializers.IntegerField()
