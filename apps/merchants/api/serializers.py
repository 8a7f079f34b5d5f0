from rest_framework import serializers

from apps.core.api.serializers import MetadataField, StrictSerializer


class AccountOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    object = serializers.SerializerMethodField()
    name = serializers.CharField()
    email = serializers.EmailField()
    country = serializers.CharField()
    metadata = serializers.DictField(child=serializers.CharField())
    live_enabled = serializers.BooleanField()
    created = serializers.SerializerMethodField()

    def get_object(self, obj) -> str:
        return "account"

    def get_created(self, obj) -> int:
        return int(obj.created_at.timestamp())


class AccountUpdateInputSerializer(StrictSerializer):
    name = serializers.CharField(required=False, max_length=200, allow_blank=False)
    email = serializers.EmailField(required=False, allow_blank=True)
    country = serializers.RegexField(
        r"^[A-Z]{2}$", required=False, help_text="ISO 3166, e.g. 'DE'."
    )
    metadata = MetadataField(required=False)


class ApiKeyOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    object = serializers.SerializerMethodField()
    type = serializers.CharField(source="kind")
    livemode = serializers.BooleanField()
    display = serializers.CharField()
    name = serializers.CharField()
    created = serializers.SerializerMethodField()
    expires_at = serializers.SerializerMethodField()
    revoked = serializers.SerializerMethodField()

    def get_object(self, obj) -> str:
        return "api_key"

    def get_created(self, obj) -> int:
        return int(obj.created_at.timestamp())

    def get_expires_at(self, obj) -> int | None:
        return int(obj.expires_at.timestamp()) if obj.expires_at else None

    def get_revoked(self, obj) -> bool:
        return obj.revoked_at is not None


class ApiKeyListOutputSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = ApiKeyOutputSerializer(many=True)
    has_more = serializers.BooleanField()
    url = serializers.CharField()


class ApiKeyCreatedOutputSerializer(ApiKeyOutputSerializer):
    secret = serializers.CharField(help_text="The full key. Shown only in this response.")


class ApiKeyCreateInputSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=["secret", "publishable"])
    name = serializers.CharField(required=False, max_length=100, allow_blank=True)


class ApiKeyRollInputSerializer(StrictSerializer):
    expires_in = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=7 * 24 * 3600,
        help_text="Seconds the old key keeps working (grace period). Default 0: immediately.",
    )
