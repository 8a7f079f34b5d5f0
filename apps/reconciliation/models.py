"""Reconciliation (issue 14): settlement reports, their lines, runs and discrepancies.

- `ReconciliationProfile`: one per connector that has settlement reports: tolerance (minor
  units), the settlement window (business days) before a missing item becomes an exception,
  the agreed fee terms, the expected merchant account and the fetch cursor.
- `SettlementReport`: a file, stored raw first (path + SHA-256; the same bytes twice are
  recognized by the unique (connector, sha256)); `loaded` or `refused` (file, line, column,
  reason), all or nothing.
- `SettlementLine`: one line of a loaded report with its matching outcome: the state, the key it
  matched on, our side (kind, id, amount, estimated fee) and the journal that posted it. Lines
  are written set-based (COPY into a staging table, then one INSERT … SELECT that matches).
- `ReconciliationRun`: one run per connector and date, counts and amounts per state.
- `Discrepancy`: the finance queue; every non-matching line and every missing item, with both
  sides, the tolerance applied, and its resolution.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from apps.core.ids import PublicIdField


class LineState(models.TextChoices):
    MATCHED = "matched"
    MISMATCHED = "mismatched"  # both sides exist; amount, currency or fee differs
    UNEXPECTED = "unexpected_in_report"  # the PSP has it, we do not
    DUPLICATE = "duplicate"
    RESOLVED = "resolved"  # by a person
    PAYOUT = "payout"  # a batch's payout line (checked against the sum of its lines)
    FEE = "fee"  # a fee-only line (posted as a fee)


class DiscrepancyKind(models.TextChoices):
    AMOUNT_MISMATCH = "amount_mismatch"
    CURRENCY_MISMATCH = "currency_mismatch"
    FEE_MISMATCH = "fee_mismatch"
    MISSING_IN_REPORT = "missing_in_report"
    UNEXPECTED_IN_REPORT = "unexpected_in_report"  # an unknown transaction
    UNEXPECTED_REFUND = "unexpected_refund"  # a refund settled that we never made
    DUPLICATE = "duplicate"
    PAYOUT_MISMATCH = "payout_mismatch"  # a payout total that does not match its lines


class ReconciliationProfile(models.Model):
    connector = models.OneToOneField(
        "connectors.Connector", on_delete=models.PROTECT, related_name="+"
    )
    enabled = models.BooleanField(default=True)
    # a difference up to this many minor units is not a discrepancy (shown in every one)
    tolerance = models.PositiveIntegerField(default=0)
    # business days after which an item still missing from the reports is an exception
    settlement_window_days = models.PositiveSmallIntegerField(default=3)
    # the PSP's settlement delay (T+n): a line settled later than this is flagged late
    settlement_delay_days = models.PositiveSmallIntegerField(default=1)
    # the agreed fee per capture: fixed + each percentage component (basis points), each
    # rounded half up (Adyen Interchange++: markup, scheme fee, interchange; Stripe: one)
    fee_fixed = models.PositiveIntegerField(default=0)
    fee_components_bps = models.JSONField(default=list, blank=True)
    merchant_account = models.CharField(max_length=100, blank=True)  # "" = the connector's
    # items older than this are not expected in reports (reconciliation started then)
    expect_since = models.DateTimeField()
    report_cursor = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(settlement_window_days__gte=0), name="recon_profile_window_positive"
            )
        ]

    def __str__(self) -> str:
        return f"Reconciliation of connector {self.connector_id}"


class ReconciliationRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    class Trigger(models.TextChoices):
        BEAT = "beat"
        ADMIN = "admin"
        COMMAND = "command"
        UPLOAD = "upload"

    public_id = PublicIdField(prefix="rcr")
    connector = models.ForeignKey(
        "connectors.Connector", on_delete=models.PROTECT, related_name="+"
    )
    merchant_id = models.BigIntegerField()
    livemode = models.BooleanField(default=False)
    run_date = models.DateField()
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    reports_loaded = models.PositiveIntegerField(default=0)
    reports_refused = models.PositiveIntegerField(default=0)
    reports_already_loaded = models.PositiveIntegerField(default=0)
    # {"matched": {"count": n, "amount": m}, "mismatched": …, "expected": …, …}
    counts = models.JSONField(default=dict, blank=True)
    # {"fees_actual": …, "fees_estimated": …, "settled_net": …, "payouts": …} per currency
    amounts = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True)  # seconds per phase

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["connector", "-run_date"], name="recon_run_connector")]

    def __str__(self) -> str:
        return f"{self.public_id} {self.run_date} ({self.status})"


class SettlementReport(models.Model):
    class Status(models.TextChoices):
        RECEIVED = "received"
        LOADED = "loaded"
        REFUSED = "refused"

    class Source(models.TextChoices):
        FETCHED = "fetched"
        UPLOADED = "uploaded"

    connector = models.ForeignKey(
        "connectors.Connector", on_delete=models.PROTECT, related_name="+"
    )
    name = models.CharField(max_length=200)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    path = models.CharField(max_length=500)  # the raw file as received
    source = models.CharField(max_length=10, choices=Source.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    error = models.TextField(blank=True)
    error_line = models.PositiveIntegerField(null=True, blank=True)
    error_column = models.CharField(max_length=100, blank=True)
    line_count = models.PositiveIntegerField(default=0)
    run = models.ForeignKey(
        ReconciliationRun, on_delete=models.PROTECT, null=True, blank=True, related_name="reports"
    )
    received_at = models.DateTimeField(auto_now_add=True)
    loaded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # the same file twice is recognized, never loaded twice
            models.UniqueConstraint(fields=["connector", "sha256"], name="recon_report_once")
        ]

    def __str__(self) -> str:
        return self.name


class SettlementLine(models.Model):
    # no database FK checks: lines are written a million at a time by one INSERT … SELECT of
    # the load that just created their report and run (a deferred FK check per line and column
    # cost as much as the insert); reports and runs are never deleted (PROTECT in Django)
    report = models.ForeignKey(
        SettlementReport, on_delete=models.PROTECT, related_name="lines", db_constraint=False
    )
    run = models.ForeignKey(
        ReconciliationRun,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    connector_id = models.BigIntegerField()
    line_number = models.PositiveIntegerField()
    record_type = models.CharField(max_length=20)
    psp_reference = models.CharField(max_length=100, blank=True)
    modification_reference = models.CharField(max_length=100, blank=True)
    merchant_reference = models.CharField(max_length=100, blank=True)
    currency = models.CharField(max_length=3)
    gross = models.BigIntegerField()
    fee = models.BigIntegerField()
    net = models.BigIntegerField()
    batch = models.CharField(max_length=100, blank=True)
    payout_id = models.CharField(max_length=100, blank=True)
    settled_on = models.DateField(null=True, blank=True)
    state = models.CharField(max_length=24, choices=LineState.choices)
    match_key = models.CharField(max_length=30, blank=True)  # psp_reference | … | manual
    expected_kind = models.CharField(max_length=10, blank=True)  # capture | refund
    expected_id = models.BigIntegerField(null=True, blank=True)
    expected_public_id = models.CharField(max_length=40, blank=True)
    expected_amount = models.BigIntegerField(null=True, blank=True)
    expected_currency = models.CharField(max_length=3, blank=True)
    agreed_fee = models.BigIntegerField(null=True, blank=True)
    estimated_fee = models.BigIntegerField(default=0)  # what the ledger booked at capture
    pending_credit = models.BigIntegerField(default=0)  # the capture's merchant pending credit
    merchant_id = models.BigIntegerField(null=True, blank=True)
    livemode = models.BooleanField(default=False)
    late = models.BooleanField(default=False)
    # the settlement journal that posted this line: one per (report, merchant, currency); a line
    # belongs to exactly one (the line is unique per report, the journal key unique in the ledger)
    journal_key = models.CharField(max_length=120, blank=True)

    class Meta:
        db_table = "reconciliation_line"
        constraints = [
            models.UniqueConstraint(fields=["report", "line_number"], name="recon_line_once"),
            models.CheckConstraint(
                condition=~Q(state="matched") | Q(expected_id__isnull=False),
                name="recon_line_matched_has_side",
            ),
            # money invariant of every report line, also checked by the parsers
            models.CheckConstraint(
                condition=Q(net=models.F("gross") - models.F("fee")),
                name="recon_line_net_is_gross_minus_fee",
            ),
        ]
        indexes = [
            models.Index(fields=["expected_kind", "expected_id"], name="recon_line_expected"),
        ]

    def __str__(self) -> str:
        return f"{self.report_id}:{self.line_number} {self.record_type} {self.state}"


class Discrepancy(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        EXPECTED_LATER = "expected_later"
        RESOLVED = "resolved"

    class Resolution(models.TextChoices):
        ACCEPTED_PSP = "accepted_psp"
        WRITTEN_OFF = "written_off"
        LINKED = "linked"
        MATCHED_LATER = "matched_later"  # a missing item that arrived in a later report

    public_id = PublicIdField(prefix="dsc")
    run = models.ForeignKey(ReconciliationRun, on_delete=models.PROTECT, related_name="+")
    connector = models.ForeignKey(
        "connectors.Connector", on_delete=models.PROTECT, related_name="+"
    )
    merchant_id = models.BigIntegerField(null=True, blank=True)
    livemode = models.BooleanField(default=False)
    kind = models.CharField(max_length=24, choices=DiscrepancyKind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    line = models.ForeignKey(
        SettlementLine, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    report = models.ForeignKey(
        SettlementReport, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    payout_id = models.CharField(max_length=100, blank=True)
    expected_kind = models.CharField(max_length=10, blank=True)
    expected_id = models.BigIntegerField(null=True, blank=True)
    expected_public_id = models.CharField(max_length=40, blank=True)
    reference = models.CharField(max_length=100, blank=True)  # the PSP's reference
    currency = models.CharField(max_length=3, blank=True)
    our_amount = models.BigIntegerField(null=True, blank=True)
    psp_amount = models.BigIntegerField(null=True, blank=True)
    our_fee = models.BigIntegerField(null=True, blank=True)
    psp_fee = models.BigIntegerField(null=True, blank=True)
    difference = models.BigIntegerField(default=0)  # psp - ours, minor units
    tolerance = models.PositiveIntegerField(default=0)
    match_key = models.CharField(max_length=30, blank=True)
    occurred_on = models.DateField(null=True, blank=True)  # the capture/refund or report date
    resolution = models.CharField(max_length=16, choices=Resolution.choices, blank=True)
    resolution_note = models.CharField(max_length=500, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    journal = models.CharField(max_length=40, blank=True)  # txn_… of the adjusting journal
    reopen_count = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]  # the queue: oldest first
        # accept the PSP's figure: core.post_ledger_adjustment; write off:
        # core.write_off_discrepancy; the other resolutions have their own
        permissions = [
            ("link_discrepancy", "Can link a discrepancy to a payment or refund by hand"),
            ("defer_discrepancy", "Can mark a discrepancy as expected later"),
            ("reopen_discrepancy", "Can reopen a resolved discrepancy"),
            ("reconcile_now", "Can start a reconciliation run or upload a settlement report"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["line"], condition=Q(line__isnull=False), name="recon_discrepancy_line"
            ),
            models.UniqueConstraint(
                fields=["expected_kind", "expected_id"],
                condition=Q(kind="missing_in_report"),
                name="recon_discrepancy_missing_once",
            ),
            models.UniqueConstraint(
                fields=["report", "payout_id"],
                condition=Q(kind="payout_mismatch"),
                name="recon_discrepancy_payout_once",
            ),
            models.CheckConstraint(
                condition=Q(status="resolved") | Q(resolution="") | Q(resolution="matched_later"),
                name="recon_discrepancy_resolution_when_resolved",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="recon_discrepancy_queue"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.kind}"

    def resolved_count_key(self) -> str:
        """Part of a resolution journal's key: a reopened discrepancy may be resolved again."""
        return str(self.reopen_count)
