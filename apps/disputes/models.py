"""Disputes (chargebacks): one row per PSP dispute, its timeline, evidence and files.

Two django-fsm axes, both protected (they change only through the transitions, called by
apps.disputes.services with the row locked): the stage (inquiry -> chargeback ->
pre_arbitration -> arbitration, forward only) and the status as Stripe exposes it. Within a
stage a status only moves forward; a new stage (a second chargeback, pre-arbitration) may
reopen it. Which moves are allowed is `lifecycle.py`; the transitions only record them."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django_fsm import RETURN_VALUE, ConcurrentTransitionMixin, FSMField, transition

from apps.core.ids import PublicIdField


class DisputeStage(models.TextChoices):
    INQUIRY = "inquiry"  # retrieval request / notification of chargeback: no money moved yet
    CHARGEBACK = "chargeback"
    PRE_ARBITRATION = "pre_arbitration"  # second chargeback / pre-arbitration
    ARBITRATION = "arbitration"


class DisputeStatus(models.TextChoices):
    WARNING_NEEDS_RESPONSE = "warning_needs_response"
    WARNING_UNDER_REVIEW = "warning_under_review"
    WARNING_CLOSED = "warning_closed"
    NEEDS_RESPONSE = "needs_response"
    UNDER_REVIEW = "under_review"
    WON = "won"
    LOST = "lost"
    ACCEPTED = "accepted"  # the merchant conceded
    EXPIRED = "expired"  # the due date passed without an answer


CLOSED_STATUSES = (
    DisputeStatus.WARNING_CLOSED,
    DisputeStatus.WON,
    DisputeStatus.LOST,
    DisputeStatus.ACCEPTED,
    DisputeStatus.EXPIRED,
)
OPEN_STATUSES = tuple(s for s in DisputeStatus.values if s not in CLOSED_STATUSES)
NEEDS_RESPONSE_STATUSES = (DisputeStatus.WARNING_NEEDS_RESPONSE, DisputeStatus.NEEDS_RESPONSE)


class Dispute(ConcurrentTransitionMixin, models.Model):
    public_id = PublicIdField(prefix="dp")
    merchant = models.ForeignKey(
        "merchants.Merchant", on_delete=models.PROTECT, related_name="disputes"
    )
    livemode = models.BooleanField()
    intent = models.ForeignKey(
        "intents.PaymentIntent", on_delete=models.PROTECT, related_name="disputes"
    )
    attempt = models.ForeignKey(
        "intents.PaymentAttempt",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="disputes",
    )
    connector = models.ForeignKey(
        "connectors.Connector", on_delete=models.PROTECT, related_name="disputes"
    )
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    psp_dispute_id = models.CharField(max_length=100)
    psp_reference = models.CharField(max_length=100, blank=True)  # the payment's
    stage = FSMField(default=DisputeStage.INQUIRY, choices=DisputeStage.choices, protected=True)
    status = FSMField(
        default=DisputeStatus.WARNING_NEEDS_RESPONSE,
        choices=DisputeStatus.choices,
        protected=True,
    )
    # the PSP's own words, from the last notification applied
    psp_status = models.CharField(max_length=40, blank=True)
    psp_event_code = models.CharField(max_length=60, blank=True)
    reason = models.CharField(max_length=40, default="general")
    network_reason_code = models.CharField(max_length=20, blank=True)
    evidence_due_by = models.DateTimeField(null=True, blank=True)  # from the PSP, never computed
    is_charge_refundable = models.BooleanField(default=False)
    # evidence staged by the merchant (Stripe's field names; file fields hold file_… ids)
    evidence = models.JSONField(default=dict, blank=True)
    evidence_submitted_at = models.DateTimeField(null=True, blank=True)
    evidence_submission_count = models.PositiveSmallIntegerField(default=0)
    evidence_submitted_stage = models.CharField(max_length=20, blank=True)
    # money, as the PSP moved it: withdrawals and reinstatements seen, what the ledger holds
    withdrawals_seen = models.PositiveSmallIntegerField(default=0)
    reinstatements_seen = models.PositiveSmallIntegerField(default=0)
    funds_withdrawn = models.BooleanField(default=False)  # the ledger holds a withdrawal now
    amount_taken = models.BigIntegerField(default=0)  # from the merchant (and sellers)
    amount_uncovered = models.BigIntegerField(default=0)  # beyond what the payment still had
    taken_before = models.BigIntegerField(default=0)  # refunds + other disputes at withdrawal
    fees_charged = models.BigIntegerField(default=0)
    fees_returned = models.BigIntegerField(default=0)  # when the PSP gave a fee back on a win
    # deadlines
    reminded_72h_at = models.DateTimeField(null=True, blank=True)
    reminded_24h_at = models.DateTimeField(null=True, blank=True)
    needs_attention = models.BooleanField(default=False)  # a deadline is near (admin flag)
    closed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["merchant", "livemode", "-id"]),
            models.Index(fields=["status", "evidence_due_by"], name="dispute_status_due"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["connector", "psp_dispute_id"], name="dispute_unique_psp_id"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="dispute_amount_positive"),
            models.CheckConstraint(
                condition=Q(amount_taken__gte=0)
                & Q(amount_uncovered__gte=0)
                & Q(fees_charged__gte=0)
                & Q(fees_returned__gte=0)
                & Q(fees_returned__lte=models.F("fees_charged"))
                & Q(taken_before__gte=0),
                name="dispute_money_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(amount_taken__lte=models.F("amount")),
                name="dispute_taken_le_amount",
            ),
        ]
        # back-office actions, each its own permission (apps/disputes/admin.py)
        permissions = [
            ("upload_dispute_evidence", "Can upload and stage dispute evidence"),
            ("submit_dispute_evidence", "Can submit a dispute's evidence to the PSP"),
            ("accept_dispute", "Can accept (concede) a dispute"),
            ("resolve_dispute_notification", "Can resolve a parked dispute notification"),
        ]

    def __str__(self) -> str:
        return self.public_id

    @property
    def is_closed(self) -> bool:
        return self.status in CLOSED_STATUSES

    # the moves themselves are decided by apps.disputes.lifecycle (forward only)
    @transition(field=stage, source="*", target=RETURN_VALUE(*DisputeStage.values))
    def move_stage(self, stage: str) -> str:
        return stage

    @transition(field=status, source="*", target=RETURN_VALUE(*DisputeStatus.values))
    def move_status(self, status: str) -> str:
        return status


class DisputeNotification(models.Model):
    """Every dispute notification, raw and normalized, with what we did with it: the
    dispute's timeline, and (dispute and intent empty) the queue of notifications about a
    payment we do not know, parked for ops."""

    class Result(models.TextChoices):
        APPLIED = "applied"
        IGNORED = "ignored"  # stale or out of order: recorded, not applied
        PARKED = "parked"  # unknown payment: waits for ops
        INFORMATIONAL = "informational"  # a fraud notification: recorded on the payment
        RESOLVED = "resolved"  # a parked one ops matched (or dismissed) later

    dispute = models.ForeignKey(
        Dispute, null=True, blank=True, on_delete=models.PROTECT, related_name="notifications"
    )
    connector = models.ForeignKey(
        "connectors.Connector", on_delete=models.PROTECT, related_name="+"
    )
    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT, related_name="+")
    livemode = models.BooleanField()
    intent = models.ForeignKey(
        "intents.PaymentIntent", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    psp_event_id = models.CharField(max_length=255)
    psp_dispute_id = models.CharField(max_length=100, blank=True)
    psp_reference = models.CharField(max_length=100, blank=True)
    raw_event = models.CharField(max_length=60)
    raw_status = models.CharField(max_length=40, blank=True)
    normalized = models.JSONField(default=dict)
    result = models.CharField(max_length=20, choices=Result.choices)
    reason = models.CharField(max_length=300, blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["connector", "psp_event_id"], name="dispute_notification_once"
            )
        ]
        indexes = [
            models.Index(
                fields=["result", "received_at"],
                condition=Q(result="parked"),
                name="dispute_notification_parked",
            )
        ]

    def __str__(self) -> str:
        return f"{self.raw_event} {self.psp_dispute_id or self.psp_reference}"


class DisputeActivity(models.Model):
    """What happened on our side: evidence staged or submitted, accepted, a journal posted, a
    reminder sent. With the notifications it makes the dispute page's timeline."""

    dispute = models.ForeignKey(Dispute, on_delete=models.PROTECT, related_name="activities")
    kind = models.CharField(max_length=40)  # evidence_staged | evidence_submitted | accepted | …
    actor = models.CharField(max_length=120, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.kind


def evidence_upload_to(instance: EvidenceFile, filename: str) -> str:
    return f"dispute_evidence/{instance.merchant_id}/{instance.public_id}"


class EvidenceFile(models.Model):
    """A merchant's evidence document (PDF, JPEG or PNG, checked by content), stored in the
    file storage (MEDIA_ROOT), never in a text column."""

    public_id = PublicIdField(prefix="file")
    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT, related_name="+")
    livemode = models.BooleanField()
    purpose = models.CharField(max_length=40, default="dispute_evidence")
    filename = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=40)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    content = models.FileField(upload_to=evidence_upload_to, max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["merchant", "livemode", "-id"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(content_type__in=["application/pdf", "image/jpeg", "image/png"]),
                name="evidence_file_type_allowed",
            )
        ]

    def __str__(self) -> str:
        return self.public_id
