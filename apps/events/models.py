from django.db import models


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
            models.UniqueConstraint(fields=["object_id", "sequence"],
                                    name="outbox_sequence_per_object"),
        ]
        indexes = [
            models.Index(fields=["created_at"], condition=models.Q(relayed_at__isnull=True),
                         name="outbox_unrelayed"),
        ]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.object_id} #{self.sequence}"
