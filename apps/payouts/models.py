"""Payouts: money leaving a merchant's or a seller's available balance for their bank.

The balance is the ledger's (`apps.ledger`): creating a payout posts a `payout` journal
(available -> payouts_in_transit) in the same transaction as the row, so PostgreSQL refuses a
payout above the available balance even under concurrent requests. Paid: in transit -> bank.
Failed or canceled: the journal is reversed, the money is back in the balance."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from apps.core.ids import PublicIdField


class PayoutStatus(models.TextChoices):
    PENDING = "pending"  # booked against the balance, not (definitely) at the provider yet
    IN_TRANSIT = "in_transit"  # accepted by the payout provider
    PAID = "paid"
    FAILED = "failed"  # refused or bounced; the money is back in the balance
    CANCELED = "canceled"


S = PayoutStatus


class Payout(ConcurrentTransitionMixin, models.Model):
    """Transitions are django-fsm methods (protected) called by apps.payouts.services with the
    row locked; ConcurrentTransitionMixin re-checks the status on save."""

    public_id = PublicIdField(prefix="po")
    merchant = models.ForeignKey(
        "merchants.Merchant", on_delete=models.PROTECT, related_name="payouts"
    )
    livemode = models.BooleanField()
    # null: the merchant's own balance
    seller = models.ForeignKey(
        "merchants.Seller",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="payouts",
    )
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = FSMField(default=S.PENDING, choices=S.choices, protected=True)
    automatic = models.BooleanField(default=False)  # made by the payout schedule
    schedule_period = models.CharField(max_length=10, blank=True)  # "2026-11-23" when automatic
    description = models.CharField(max_length=255, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    destination = models.CharField(max_length=40, blank=True)  # the seller's ba_… token
    destination_last4 = models.CharField(max_length=4, blank=True)
    # one round per ledger journal: a retried failed payout books a new journal and uses a new
    # provider idempotency key
    attempt = models.PositiveSmallIntegerField(default=1)
    ledger_transaction = models.CharField(max_length=40)  # txn_… of this round's payout journal
    provider_reference = models.CharField(max_length=100, blank=True, db_index=True)
    # True while a request may have reached the provider without a definite answer: such a
    # payout is re-sent with the same key, never canceled
    awaiting_provider = models.BooleanField(default=False)
    submit_count = models.PositiveIntegerField(default=0)
    last_submitted_at = models.DateTimeField(null=True, blank=True)
    last_submit_error = models.CharField(max_length=200, blank=True)
    failure_code = models.CharField(max_length=40, blank=True)
    failure_message = models.CharField(max_length=255, blank=True)
    arrival_date = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["merchant", "livemode", "-id"], name="payout_merchant_mode"),
            models.Index(fields=["status", "updated_at"], name="payout_status_updated"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payout_amount_positive"),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[a-z]{3}$"), name="payout_currency_lower"
            ),
            models.CheckConstraint(condition=Q(status__in=S.values), name="payout_status_valid"),
            # the schedule pays each balance out at most once per period, however often it runs
            models.UniqueConstraint(
                fields=["merchant", "livemode", "seller", "currency", "schedule_period"],
                condition=Q(automatic=True),
                nulls_distinct=False,
                name="payout_automatic_once_per_period",
            ),
        ]

    def __str__(self) -> str:
        return self.public_id

    @property
    def provider_idempotency_key(self) -> str:
        """Derived from the payout id: every re-send of a round is the same provider request."""
        return f"{self.public_id}:{self.attempt}"

    # transitions
    @transition(field=status, source=S.PENDING, target=S.IN_TRANSIT)
    def mark_in_transit(self):
        pass

    @transition(field=status, source=S.IN_TRANSIT, target=S.PAID)
    def mark_paid(self):
        pass

    # a provider may refuse a payout at once (pending) or bounce it later (in transit)
    @transition(field=status, source=[S.PENDING, S.IN_TRANSIT], target=S.FAILED)
    def mark_failed(self):
        pass

    @transition(field=status, source=S.PENDING, target=S.CANCELED)
    def cancel(self):
        pass

    # finance retries a failed payout: a new round against the balance
    @transition(field=status, source=S.FAILED, target=S.PENDING)
    def retry(self):
        pass
