from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Upper
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from apps.core.ids import PublicIdField


class IntentStatus(models.TextChoices):
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"


S = IntentStatus
NON_FINAL = [
    S.REQUIRES_PAYMENT_METHOD,
    S.REQUIRES_CONFIRMATION,
    S.REQUIRES_ACTION,
    S.REQUIRES_CAPTURE,
]


class PaymentIntent(ConcurrentTransitionMixin, models.Model):
    """One payment a merchant wants to collect, whichever PSP ends up serving it.

    Transitions are django-fsm methods (protected: the status can only change through them)
    called by apps.intents.services with the row locked; ConcurrentTransitionMixin adds an
    optimistic check on save as a second line of defence."""

    class CaptureMethod(models.TextChoices):
        AUTOMATIC = "automatic"
        MANUAL = "manual"

    class PendingOperation(models.TextChoices):
        NONE = ""
        AUTHORIZE = "authorize"
        CAPTURE = "capture"
        CANCEL = "cancel"

    public_id = PublicIdField(prefix="pi")
    merchant = models.ForeignKey(
        "merchants.Merchant", on_delete=models.PROTECT, related_name="payment_intents"
    )
    livemode = models.BooleanField()
    status = FSMField(default=S.REQUIRES_PAYMENT_METHOD, choices=S.choices, protected=True)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    capture_method = models.CharField(
        max_length=10, choices=CaptureMethod.choices, default=CaptureMethod.AUTOMATIC
    )
    amount_capturable = models.BigIntegerField(default=0)
    amount_received = models.BigIntegerField(default=0)
    # includes refunds still pending at the PSP, so concurrent refunds can never over-refund
    amount_refunded = models.BigIntegerField(default=0)
    # taken back by disputes (withdrawn by the PSP and not reinstated): with the refunds it can
    # never exceed what was received (CHECK intent_refunded_and_disputed_le_received)
    amount_disputed = models.BigIntegerField(default=0)
    disputed = models.BooleanField(default=False)  # a dispute is open: no refunds meanwhile
    fraud_notified_at = models.DateTimeField(null=True, blank=True)  # the PSP's fraud notice
    payment_method = models.ForeignKey(
        "vault.PaymentMethod", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    connector = models.ForeignKey(
        "connectors.Connector", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    psp_reference = models.CharField(max_length=100, blank=True, db_index=True)
    pending_operation = models.CharField(
        max_length=10, choices=PendingOperation.choices, default="", blank=True
    )
    # a capture or cancel in flight at the PSP: its amount (capture), when the stalled-operation
    # sweep should look at it if no answer was applied by then, and how often it already asked
    pending_amount = models.BigIntegerField(null=True, blank=True)
    pending_check_at = models.DateTimeField(null=True, blank=True)
    pending_inquiry_count = models.PositiveSmallIntegerField(default=0)
    order_id = models.CharField(max_length=100, blank=True, db_index=True)
    customer_email = models.EmailField(blank=True, db_index=True)
    description = models.CharField(max_length=1000, blank=True)
    # where the shopper's browser goes after a redirect (3-D Secure), once the result is known
    return_url = models.URLField(max_length=2000, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    last_payment_error = models.JSONField(null=True, blank=True)
    next_action = models.JSONField(null=True, blank=True)
    cancellation_reason = models.CharField(max_length=40, blank=True)
    needs_review = models.BooleanField(default=False)  # an unknown outcome ops must look at
    # Radar's outcome (apps/risk, Stripe's shape) with the score's contributions and the signals
    risk_outcome = models.JSONField(null=True, blank=True)
    # {"card": {"request_three_d_secure": automatic|any|challenge, "sca_exemption": …}}
    payment_method_options = models.JSONField(default=dict, blank=True)
    # {"surcharge": minor units included in `amount`, "surcharge_rule": "srch_…"} (apps/risk)
    amount_details = models.JSONField(default=dict, blank=True)
    # marketplace: [{"seller": "sel_…", "amount": 500}] credited on capture, plus our fee
    splits = models.JSONField(default=list, blank=True)
    platform_fee_amount = models.BigIntegerField(default=0)
    ledger_hold = models.CharField(max_length=40, blank=True)  # txn_… of the open hold
    authorized_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["merchant", "livemode", "-id"]),
            models.Index(fields=["status", "authorized_at"], name="intent_status_authorized"),
            # support's search by email ignores case (selectors.intent_search)
            models.Index(Upper("customer_email"), name="intent_customer_email_ci"),
            # the stalled-operation sweep reads only intents with a capture or cancel in flight
            models.Index(
                fields=["pending_check_at"],
                condition=Q(pending_check_at__isnull=False),
                name="intent_pending_check_due",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="intent_amount_positive"),
            models.CheckConstraint(
                condition=Q(amount_refunded__gte=0)
                & Q(amount_refunded__lte=F("amount_received"))
                & Q(amount_received__gte=0)
                & Q(amount_received__lte=F("amount")),
                name="intent_refunded_le_received_le_amount",
            ),
            models.CheckConstraint(
                condition=Q(amount_disputed__gte=0)
                & Q(amount_disputed__lte=F("amount_received") - F("amount_refunded")),
                name="intent_refunded_and_disputed_le_received",
            ),
            models.CheckConstraint(
                condition=Q(amount_capturable__gte=0) & Q(amount_capturable__lte=F("amount")),
                name="intent_capturable_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(platform_fee_amount__gte=0) & Q(platform_fee_amount__lte=F("amount")),
                name="intent_platform_fee_within_amount",
            ),
        ]

    def __str__(self) -> str:
        return self.public_id

    # transitions: the graph of architecture section 4
    @transition(field=status, source=S.REQUIRES_PAYMENT_METHOD, target=S.REQUIRES_CONFIRMATION)
    def attach_payment_method(self):
        pass

    @transition(
        field=status, source=[S.REQUIRES_CONFIRMATION, S.REQUIRES_ACTION], target=S.PROCESSING
    )
    def start_processing(self):
        pass

    @transition(field=status, source=S.PROCESSING, target=S.REQUIRES_ACTION)
    def require_action(self):
        pass

    @transition(field=status, source=[S.PROCESSING, S.REQUIRES_ACTION], target=S.REQUIRES_CAPTURE)
    def authorize(self):
        pass

    @transition(field=status, source=[S.PROCESSING, S.REQUIRES_ACTION], target=S.SUCCEEDED)
    def succeed(self):
        pass

    @transition(
        field=status, source=[S.PROCESSING, S.REQUIRES_ACTION], target=S.REQUIRES_PAYMENT_METHOD
    )
    def fail(self):
        pass

    @transition(field=status, source=S.REQUIRES_CAPTURE, target=S.PROCESSING)
    def start_capture(self):
        pass

    @transition(field=status, source=S.PROCESSING, target=S.REQUIRES_CAPTURE)
    def capture_failed(self):
        pass

    @transition(field=status, source=[*NON_FINAL, S.PROCESSING], target=S.CANCELED)
    def cancel(self):
        pass


class PaymentAttempt(models.Model):
    """One call to one PSP for one intent."""

    class Outcome(models.TextChoices):
        PENDING = "pending"  # created, PSP call not answered yet
        APPROVED = "approved"
        REQUIRES_ACTION = "requires_action"
        SOFT_DECLINE = "soft_decline"
        HARD_DECLINE = "hard_decline"
        UNKNOWN = "unknown"
        ERROR = "error"
        CANCELED = "canceled"

    # unique through Meta constraints, and no index on `intent` alone (the sequence constraint
    # leads with it): a field's own unique/db_index also gets a LIKE-pattern index on
    # PostgreSQL that no query here uses, and every attempt insert and result update pays for
    # each index (this table is written twice per PSP call)
    public_id = PublicIdField(prefix="pa", unique=False)
    intent = models.ForeignKey(
        PaymentIntent, on_delete=models.PROTECT, related_name="attempts", db_index=False
    )
    sequence = models.PositiveSmallIntegerField()
    connector = models.ForeignKey(
        "connectors.Connector", on_delete=models.PROTECT, related_name="+"
    )
    psp_idempotency_key = models.CharField(max_length=100)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.PENDING)
    decline_code = models.CharField(max_length=60, blank=True)
    raw_code = models.CharField(max_length=100, blank=True)
    raw_message = models.CharField(max_length=500, blank=True)
    psp_reference = models.CharField(max_length=100, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    routing_trace = models.JSONField(default=dict, blank=True)
    # Radar's outcome for the payment, copied on the attempt when it is inserted
    risk_outcome = models.JSONField(null=True, blank=True)
    # SCA: what was asked of the PSP (3DS requested, exemption claimed, why) and what came of it
    # (authentication result, liability shift), apps/risk/sca.py
    three_d_secure = models.JSONField(null=True, blank=True)
    # smart retries: after a decline, what was decided and why (apps/risk/retries.py)
    retry = models.JSONField(null=True, blank=True)
    inquiry_count = models.PositiveSmallIntegerField(default=0)
    next_inquiry_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["intent_id", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["intent", "sequence"], name="attempt_sequence_unique"),
            models.UniqueConstraint(fields=["public_id"], name="attempt_public_id_unique"),
            models.UniqueConstraint(
                fields=["psp_idempotency_key"], name="attempt_psp_idempotency_key_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["psp_reference"], name="attempt_psp_reference"),
            models.Index(
                fields=["next_inquiry_at"],
                condition=Q(outcome="unknown"),
                name="attempt_unknown_due",
            ),
        ]

    def __str__(self) -> str:
        return self.public_id


class RefundStatus(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class Refund(ConcurrentTransitionMixin, models.Model):
    public_id = PublicIdField(prefix="re")
    intent = models.ForeignKey(PaymentIntent, on_delete=models.PROTECT, related_name="refunds")
    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT, related_name="+")
    livemode = models.BooleanField()
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=40, blank=True)
    status = FSMField(default=RefundStatus.PENDING, choices=RefundStatus.choices, protected=True)
    connector = models.ForeignKey(
        "connectors.Connector", on_delete=models.PROTECT, related_name="+"
    )
    psp_idempotency_key = models.CharField(max_length=100, unique=True)
    psp_reference = models.CharField(max_length=100, blank=True, db_index=True)
    failure_reason = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    inquiry_count = models.PositiveSmallIntegerField(default=0)
    # while pending: when the PSP is asked next if its answer has not been applied by then (set
    # before the first send, so a refund whose process died is asked too)
    next_inquiry_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
        ]
        indexes = [
            # the refund inquiry sweep reads only pending refunds
            models.Index(
                fields=["next_inquiry_at"],
                name="refund_pending_inquiry",
                condition=Q(status="pending"),
            ),
        ]

    def __str__(self) -> str:
        return self.public_id

    @transition(field=status, source=RefundStatus.PENDING, target=RefundStatus.SUCCEEDED)
    def succeed(self):
        pass

    @transition(field=status, source=RefundStatus.PENDING, target=RefundStatus.FAILED)
    def fail(self):
        pass

    @transition(field=status, source=RefundStatus.PENDING, target=RefundStatus.CANCELED)
    def cancel(self):
        pass
