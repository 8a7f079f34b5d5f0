from django.db import models
from django.db.models import Q


class IdempotencyRecord(models.Model):
    """One claimed `Idempotency-Key`, scoped by merchant + mode + key (the method and path
    say which request it was claimed for)."""

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress"
        COMPLETED = "completed"

    merchant_id = models.BigIntegerField()
    livemode = models.BooleanField()
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=255)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)  # sha256 of the canonical request
    status = models.CharField(max_length=16, choices=Status.choices)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.BinaryField(null=True, blank=True)
    request_id = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField()
    locked_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            # one key, one request: the same key on another endpoint is refused
            models.UniqueConstraint(
                fields=["merchant_id", "livemode", "key"], name="idempotency_key_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(status="in_progress")
                | models.Q(response_status__isnull=False, response_body__isnull=False),
                name="idempotency_completed_has_response",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"


class AuditLogEntry(models.Model):
    """Append-only: a PostgreSQL trigger refuses UPDATE and DELETE (see migration 0002)."""

    class ActorType(models.TextChoices):
        API_KEY = "api_key"
        STAFF = "staff"
        SYSTEM = "system"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor = models.CharField(max_length=150)  # key's display prefix, staff username, task name
    merchant_id = models.BigIntegerField(
        null=True, blank=True, db_index=True
    )  # no FK: rows outlive
    livemode = models.BooleanField(null=True, blank=True)
    action = models.CharField(max_length=80)
    object_type = models.CharField(max_length=80)
    object_id = models.CharField(max_length=80, db_index=True)
    changes = models.JSONField(default=dict, blank=True)  # {"field": [before, after]}
    request_id = models.CharField(max_length=40, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "audit log entries"
        indexes = [
            # what an interrupted idempotent request changed (apps/core/idempotency.py)
            models.Index(
                fields=["request_id"], condition=~Q(request_id=""), name="audit_by_request"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type} {self.object_id} by {self.actor}"


class BackOfficeAction(models.Model):
    """Holds the permissions for money-moving back-office actions. No table: only the
    permissions (and their content type) exist, so roles can be granted them."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("capture_payment", "Can capture a payment from the back-office"),
            ("cancel_payment", "Can cancel a payment from the back-office"),
            ("refund_payment", "Can refund a payment from the back-office"),
            ("retry_payout", "Can retry or cancel a payout"),
            ("write_off_discrepancy", "Can resolve or write off a reconciliation discrepancy"),
            ("post_ledger_adjustment", "Can post a manual ledger adjustment or reversal"),
            ("replay_webhook", "Can replay webhook deliveries and reprocess PSP webhooks"),
            ("force_breaker", "Can force a connector's circuit breaker open or closed"),
            ("manage_api_keys", "Can create, roll and revoke merchant API keys"),
        ]

    def __str__(self) -> str:
        return "back-office action"
