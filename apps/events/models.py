"""Events in both directions.

Outbound: `OutboxEvent` rows are written in the same transaction as the state change they
describe; the relay turns each committed row into exactly one merchant-facing `Event` (unique
`outbox_id`) and one `WebhookDelivery` per matching `WebhookEndpoint`; every HTTP try is a
`WebhookDeliveryAttempt`.

Inbound: every PSP notification is stored raw as an `InboundWebhook` before anything else,
then verified, deduplicated on (connector, PSP event id) and processed in Celery.
"""

from django.db import models
from django.db.models import Q

from apps.core.ids import PublicIdField


class OutboxEvent(models.Model):
    """Transactional outbox: written in the same transaction as the state change it describes.
    The relay turns rows into merchant-facing events and webhook deliveries."""

    merchant_id = models.BigIntegerField(db_index=True)
    livemode = models.BooleanField()
    object_type = models.CharField(max_length=40)  # payment_intent, refund, payout, …
    object_id = models.CharField(max_length=40)  # public id of the object
    sequence = models.PositiveIntegerField()  # per object, so receivers can order events
    event_type = models.CharField(max_length=80)  # payment_intent.succeeded, …
    payload = models.JSONField()  # the object as it was at that moment
    previous_attributes = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=40, blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    relayed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["object_id", "sequence"], name="outbox_sequence_per_object"
            ),
        ]
        indexes = [
            # the relay claims the oldest unrelayed rows: a small partial index on id
            models.Index(
                fields=["id"], condition=Q(relayed_at__isnull=True), name="outbox_unrelayed"
            ),
        ]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.object_id} #{self.sequence}"


class Event(models.Model):
    """What a merchant sees at /v1/events and receives by webhook. One per outbox row: the
    unique `outbox_id` makes a second relay of the same row a no-op."""

    public_id = PublicIdField(prefix="evt")
    outbox_id = models.BigIntegerField(unique=True)  # no FK: the outbox may be purged
    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT, related_name="+")
    livemode = models.BooleanField()
    type = models.CharField(max_length=80)
    object_type = models.CharField(max_length=40)
    object_id = models.CharField(max_length=40)
    sequence = models.PositiveIntegerField()
    data = models.JSONField()  # the object as it was when the change committed
    previous_attributes = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=40, blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(db_index=True)  # when the change happened (outbox row)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["merchant", "livemode", "-id"], name="event_merchant_list"),
            models.Index(
                fields=["merchant", "livemode", "type", "-id"], name="event_merchant_type"
            ),
            models.Index(fields=["object_id", "sequence"], name="event_object_sequence"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.type}"


class WebhookEndpoint(models.Model):
    class Status(models.TextChoices):
        ENABLED = "enabled"
        DISABLED = "disabled"

    public_id = PublicIdField(prefix="we")
    merchant = models.ForeignKey(
        "merchants.Merchant", on_delete=models.PROTECT, related_name="webhook_endpoints"
    )
    livemode = models.BooleanField()
    url = models.CharField(max_length=2048)
    description = models.CharField(max_length=500, blank=True)
    enabled_events = models.JSONField(default=list)  # ["*"], ["payment_intent.*", "refund.failed"]
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ENABLED)
    disabled_reason = models.CharField(max_length=200, blank=True)
    # AES-256-GCM (apps.core.crypto) of the `whsec_…` signing secret; shown once, never again
    secret_encrypted = models.BinaryField()
    secret_key_id = models.CharField(max_length=40)
    # after a roll the old secret also signs until it expires (Standard Webhooks: several sigs)
    previous_secret_encrypted = models.BinaryField(null=True, blank=True)
    previous_secret_key_id = models.CharField(max_length=40, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)  # first failure since a success
    last_success_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["merchant", "livemode", "-id"], name="endpoint_merchant_list"),
            models.Index(
                fields=["failing_since"],
                condition=Q(status="enabled", failing_since__isnull=False),
                name="endpoint_failing",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.url}"


class WebhookDelivery(models.Model):
    """One event to one endpoint. `webhook-id` on the wire is the event id, so a retry or a
    replay carries the same id and receivers can de-duplicate."""

    class Status(models.TextChoices):
        PENDING = "pending"  # due at next_attempt_at (first try or a retry)
        SUCCEEDED = "succeeded"
        DEAD = "dead"  # dead-lettered: retries exhausted or endpoint disabled; replayable
        CANCELED = "canceled"  # endpoint deleted

    public_id = PublicIdField(prefix="whd")
    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="deliveries")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries"
    )
    merchant_id = models.BigIntegerField()
    livemode = models.BooleanField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)  # every try, for numbering
    retry_count = models.PositiveIntegerField(default=0)  # failures since (re)queued: backoff
    replay_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)  # claim lease of a sender
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    dead_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="delivery_event_endpoint"),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], condition=Q(status="pending"), name="delivery_due"
            ),
            models.Index(fields=["endpoint", "status", "-id"], name="delivery_endpoint_status"),
            models.Index(fields=["merchant_id", "status"], name="delivery_merchant_status"),
        ]

    def __str__(self) -> str:
        return self.public_id


class WebhookDeliveryAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    latency_ms = models.PositiveIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.CharField(max_length=500, blank=True)  # the start of it
    error = models.CharField(max_length=300, blank=True)  # network error, timeout, refused URL
    succeeded = models.BooleanField()

    class Meta:
        ordering = ["delivery_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="delivery_attempt_number"),
        ]

    def __str__(self) -> str:
        return f"{self.delivery_id} #{self.number}"


class InboundWebhook(models.Model):
    """A PSP notification as it arrived (raw body kept), and what processing it did."""

    class Status(models.TextChoices):
        RECEIVED = "received"  # stored raw, not verified yet
        REJECTED = "rejected"  # bad signature or unreadable body: nothing changed
        DUPLICATE = "duplicate"  # same (connector, PSP event id) as an earlier one: ignored
        PENDING = "pending"  # verified, waiting for a worker
        PROCESSING = "processing"
        RETRYING = "retrying"  # failed or not applicable yet; due at next_attempt_at
        PROCESSED = "processed"
        DEAD = "dead"  # dead-lettered: retries exhausted; reprocess from the admin

    class Verification(models.TextChoices):
        PENDING = "pending"
        VERIFIED = "verified"
        FAILED = "failed"

    public_id = PublicIdField(prefix="whin")
    connector = models.ForeignKey(
        "connectors.Connector", on_delete=models.PROTECT, related_name="+"
    )
    merchant_id = models.BigIntegerField()
    livemode = models.BooleanField()
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    remote_addr = models.CharField(max_length=64, blank=True)
    headers = models.JSONField(default=dict, blank=True)  # a safe subset, signature included
    body = models.BinaryField()
    body_sha256 = models.CharField(max_length=64)
    verification = models.CharField(
        max_length=10, choices=Verification.choices, default=Verification.PENDING
    )
    verification_error = models.CharField(max_length=300, blank=True)
    psp_event_id = models.CharField(max_length=255, blank=True, db_index=True)
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="duplicates"
    )
    event_types = models.JSONField(default=list, blank=True)  # normalized: authorization, …
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    retry_count = models.PositiveIntegerField(default=0)  # since (re)queued: bounds retries
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    # what processing did: [{"attempt", "event", "type", "result", "reason", "object", "changes"}]
    outcome = models.JSONField(default=list, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["received", "pending", "processing", "retrying"]),
                name="inbound_webhook_due",
            ),
            models.Index(fields=["merchant_id", "status"], name="inbound_merchant_status"),
        ]

    def __str__(self) -> str:
        return self.public_id


class InboundWebhookClaim(models.Model):
    """The de-duplication: one row per (connector, PSP event id), naming the first copy. It is
    inserted with ON CONFLICT DO NOTHING in the statement that accepts a notification, so a
    concurrent twin waits for the first and then sees it, instead of failing."""

    connector = models.ForeignKey(
        "connectors.Connector", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    psp_event_id = models.CharField(max_length=255)
    webhook = models.OneToOneField(
        InboundWebhook, on_delete=models.CASCADE, related_name="dedup_claim"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connector", "psp_event_id"], name="inbound_webhook_dedup_claim"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.connector_id}:{self.psp_event_id}"


class DeadLetteredDelivery(WebhookDelivery):
    """Admin view of the outbound dead letters."""

    class Meta:
        proxy = True
        verbose_name = "dead-lettered merchant webhook"


class DeadLetteredInboundWebhook(InboundWebhook):
    """Admin view of the inbound dead letters."""

    class Meta:
        proxy = True
        verbose_name = "dead-lettered PSP webhook"
