"""Double-entry ledger tables. The journal (transactions and entries) is append-only: PostgreSQL
triggers refuse UPDATE, DELETE and TRUNCATE, a deferred constraint trigger refuses any journal
whose entries do not sum to zero, and an account's balance can only move to the `balance_after`
of an entry at its new version (migration 0002). Sign convention: see apps/ledger/chart.py."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from apps.core.ids import PublicIdField
from apps.ledger import chart


class LedgerAccount(models.Model):
    """One account of one merchant in one currency and mode. Created on demand by the services."""

    class Kind(models.TextChoices):
        ASSET = chart.ASSET
        LIABILITY = chart.LIABILITY
        REVENUE = chart.REVENUE
        EXPENSE = chart.EXPENSE

    class NormalBalance(models.TextChoices):
        DEBIT = chart.DEBIT
        CREDIT = chart.CREDIT

    merchant_id = models.BigIntegerField()  # no FK: the ledger is a leaf
    livemode = models.BooleanField()
    code = models.CharField(max_length=chart.MAX_CODE_LENGTH)
    currency = models.CharField(max_length=3)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    normal_balance = models.CharField(max_length=6, choices=NormalBalance.choices)
    allow_negative = models.BooleanField(default=False)
    # in normal-balance terms: a liability we owe is positive
    posted_balance = models.BigIntegerField(default=0)
    pending_debits = models.BigIntegerField(default=0)
    pending_credits = models.BigIntegerField(default=0)
    version = models.BigIntegerField(default=0)  # = number of entries on the account
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "ledger_account"
        ordering = ["merchant_id", "currency", "code"]
        constraints = [
            # code last: the posting's `code = ANY(...)` lock query is an index range scan
            models.UniqueConstraint(
                fields=["merchant_id", "livemode", "currency", "code"],
                name="ledger_account_unique_code",
            ),
            models.CheckConstraint(
                condition=Q(allow_negative=True)
                | (
                    Q(posted_balance__gte=0)
                    & (
                        Q(normal_balance="credit", posted_balance__gte=F("pending_debits"))
                        | Q(normal_balance="debit", posted_balance__gte=F("pending_credits"))
                    )
                ),
                name="ledger_account_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(pending_debits__gte=0, pending_credits__gte=0, version__gte=0),
                name="ledger_account_counters_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["asset", "expense"], normal_balance="debit")
                | Q(kind__in=["liability", "revenue"], normal_balance="credit"),
                name="ledger_account_normal_balance_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[a-z]{3}$"), name="ledger_account_currency_lower"
            ),
        ]

    def __str__(self) -> str:
        mode = "live" if self.livemode else "test"
        return f"{self.code} {self.currency.upper()} (merchant {self.merchant_id}, {mode})"

    @property
    def available_balance(self) -> int:
        """Posted balance less the holds that would reduce it."""
        held = self.pending_debits if self.normal_balance == chart.CREDIT else self.pending_credits
        return self.posted_balance - held


class JournalTransaction(models.Model):
    """One balanced journal. Immutable: corrections are reversals. A hold's state is derived from
    the (unique) journal that resolves it, so no row is ever updated."""

    class Kind(models.TextChoices):
        AUTHORIZATION_HOLD = "authorization_hold"
        CAPTURE = "capture"
        VOID = "void"
        EXPIRY = "expiry"
        REFUND = "refund"
        SETTLEMENT = "settlement"  # PSP settlement file: receivable -> bank
        FUNDS_RELEASE = "funds_release"  # settlement delay over: pending -> available
        FEE = "fee"
        CHARGEBACK = "chargeback"
        CHARGEBACK_REVERSAL = "chargeback_reversal"
        PAYOUT = "payout"
        PAYOUT_PAID = "payout_paid"
        PAYOUT_FAILURE = "payout_failure"
        REVERSAL = "reversal"
        ADJUSTMENT = "adjustment"
        TRANSFER = "transfer"

    HOLD_KINDS = (Kind.AUTHORIZATION_HOLD,)
    RESOLUTION_KINDS = (Kind.CAPTURE, Kind.VOID, Kind.EXPIRY)
    REVERSAL_KINDS = (Kind.REVERSAL, Kind.PAYOUT_FAILURE)

    public_id = PublicIdField(prefix="txn")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    merchant_id = models.BigIntegerField()
    livemode = models.BooleanField()
    currency = models.CharField(max_length=3)
    idempotency_key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)  # sha256 of the canonical request
    resolves = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="resolved_by_set",
        db_index=False,  # the unique constraint indexes it
    )
    reverses = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reversed_by_set",
        db_index=False,
    )
    # the capture whose pending funds this release made available
    settles = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="released_by_set",
        db_index=False,
    )
    expires_at = models.DateTimeField(null=True, blank=True)  # holds only
    description = models.CharField(max_length=255, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    source_type = models.CharField(max_length=40, blank=True)
    source_id = models.CharField(max_length=80, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "ledger_transaction"
        ordering = ["-id"]
        constraints = [
            # a named constraint, not unique=True: no extra LIKE index on the hot insert path
            models.UniqueConstraint(
                fields=["idempotency_key"], name="ledger_transaction_idempotency_key"
            ),
            # partial: most journals resolve, reverse and settle nothing
            models.UniqueConstraint(
                fields=["resolves"],
                condition=Q(resolves__isnull=False),
                name="ledger_transaction_resolves_once",
            ),
            models.UniqueConstraint(
                fields=["reverses"],
                condition=Q(reverses__isnull=False),
                name="ledger_transaction_reverses_once",
            ),
            models.UniqueConstraint(
                fields=["settles"],
                condition=Q(settles__isnull=False),
                name="ledger_transaction_settles_once",
            ),
            models.CheckConstraint(
                condition=Q(resolves__isnull=True) | Q(kind__in=["capture", "void", "expiry"]),
                name="ledger_transaction_resolves_kind",
            ),
            models.CheckConstraint(
                condition=Q(reverses__isnull=True) | Q(kind__in=["reversal", "payout_failure"]),
                name="ledger_transaction_reverses_kind",
            ),
            models.CheckConstraint(
                condition=Q(kind="authorization_hold", expires_at__isnull=False)
                | (~Q(kind="authorization_hold") & Q(expires_at__isnull=True)),
                name="ledger_transaction_hold_expires",
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[a-z]{3}$"),
                name="ledger_transaction_currency_lower",
            ),
        ]
        indexes = [
            models.Index(fields=["source_id"], name="ledger_txn_source_idx"),
            models.Index(fields=["merchant_id", "livemode", "-id"], name="ledger_txn_merchant_idx"),
            # the settlement-release sweep and the hold-expiry listing
            models.Index(
                fields=["created_at"], condition=Q(kind="capture"), name="ledger_txn_capture_idx"
            ),
            models.Index(
                fields=["expires_at"],
                condition=Q(kind="authorization_hold"),
                name="ledger_txn_hold_expiry_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.kind}"


class LedgerEntry(models.Model):
    """One line of a journal. `amount` is debit-positive; `balance_after` is the account's posted
    balance (normal-balance terms) after this entry, at `account_version`."""

    class Phase(models.TextChoices):
        POSTED = "posted"
        HOLD = "hold"  # opens a pending amount
        RELEASE = "release"  # closes (part of) a hold's pending amount

    transaction = models.ForeignKey(
        JournalTransaction, on_delete=models.PROTECT, related_name="entries"
    )
    # indexed by the (account, account_version) unique constraint
    account = models.ForeignKey(
        LedgerAccount, on_delete=models.PROTECT, related_name="entries", db_index=False
    )
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    phase = models.CharField(max_length=8, choices=Phase.choices, default=Phase.POSTED)
    balance_after = models.BigIntegerField()
    account_version = models.BigIntegerField()

    class Meta:
        db_table = "ledger_entry"
        ordering = ["id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.UniqueConstraint(
                fields=["account", "account_version"], name="ledger_entry_account_version_unique"
            ),
            models.CheckConstraint(condition=~Q(amount=0), name="ledger_entry_amount_non_zero"),
            models.CheckConstraint(
                condition=Q(account_version__gt=0), name="ledger_entry_version_positive"
            ),
            models.CheckConstraint(
                condition=Q(phase__in=["posted", "hold", "release"]),
                name="ledger_entry_phase_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.amount:+d} {self.currency} ({self.phase})"

    @property
    def debit(self) -> int:
        return self.amount if self.amount > 0 else 0

    @property
    def credit(self) -> int:
        return -self.amount if self.amount < 0 else 0


class DriftCheckRun(models.Model):
    """One run of the balance recomputation (`ledger_check_drift`)."""

    class Status(models.TextChoices):
        RUNNING = "running"
        CLEAN = "clean"
        DRIFT = "drift"

    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    accounts_checked = models.PositiveIntegerField(default=0)
    transactions_checked = models.PositiveIntegerField(default=0)
    entries_checked = models.PositiveBigIntegerField(default=0)
    findings_count = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "ledger_driftcheckrun"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Drift check #{self.pk} ({self.status})"


class DriftFinding(models.Model):
    class Kind(models.TextChoices):
        POSTED_BALANCE = "posted_balance"  # account balance != sum of its posted entries
        PENDING = "pending"  # pending debits/credits != sum of hold/release entries
        VERSION = "version"  # account version != number of entries
        VERSION_GAP = "version_gap"  # entry versions not 1..n
        CHAIN = "chain"  # balance_after != previous balance_after + this entry
        UNBALANCED_TRANSACTION = "unbalanced_transaction"
        CURRENCY_TOTAL = "currency_total"  # a currency's trial balance does not net to zero

    run = models.ForeignKey(DriftCheckRun, on_delete=models.CASCADE, related_name="findings")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    account = models.ForeignKey(
        LedgerAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    transaction = models.ForeignKey(
        JournalTransaction, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    merchant_id = models.BigIntegerField(null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    expected = models.BigIntegerField(null=True, blank=True)
    actual = models.BigIntegerField(null=True, blank=True)
    detail = models.CharField(max_length=255, blank=True)

    class Meta:
        db_table = "ledger_driftfinding"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"
