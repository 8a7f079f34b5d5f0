"""Rollups the dashboards read: payment attempts and ledger postings pre-aggregated per minute
and per hour, so a dashboard over 30 days of a million payments reads a few thousand rows.

Maintained by `rollups_refresh` (apps/observability/rollups.py), run by beat every minute over
the recent window and nightly over the last two days (late inquiry answers, late webhooks).
Rows are derived data: a refresh deletes and rewrites its window, so they can always be
rebuilt from the source tables (`manage.py refresh_rollups --days N`)."""

from __future__ import annotations

from django.db import models


class Period(models.TextChoices):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"


class AttemptRollup(models.Model):
    """Authorization attempts by bucket and dimensions. `first_attempt`: the intent's first
    attempt ever (its count is the number of intents); `failover_reason`: set on an attempt made
    by a failover, the previous attempt's decline code or outcome."""

    period = models.CharField(max_length=6, choices=Period.choices)
    bucket = models.DateTimeField()
    merchant_id = models.BigIntegerField()
    livemode = models.BooleanField()
    connector_id = models.BigIntegerField()
    psp = models.CharField(max_length=20)
    brand = models.CharField(max_length=12, blank=True)
    currency = models.CharField(max_length=3)
    country = models.CharField(max_length=2, blank=True)
    outcome = models.CharField(max_length=20)
    decline_code = models.CharField(max_length=60, blank=True)
    first_attempt = models.BooleanField()
    failover_reason = models.CharField(max_length=60, blank=True)
    attempts = models.IntegerField()
    amount = models.BigIntegerField()
    latency_sum_ms = models.BigIntegerField()
    latency_count = models.IntegerField()
    # latency histogram (non-cumulative counts): <=50, <=100, <=250, <=500, <=1000, <=2500, more
    latency_buckets = models.JSONField(default=list)

    class Meta:
        indexes = [
            models.Index(fields=["period", "merchant_id", "bucket"], name="attempt_rollup_scope"),
            models.Index(fields=["period", "bucket"], name="attempt_rollup_bucket"),
        ]
        # the admin shows this model as the entry to the dashboards
        verbose_name = "dashboard"
        verbose_name_plural = "dashboards"

    def __str__(self) -> str:
        return f"{self.period} {self.bucket:%Y-%m-%d %H:%M} {self.psp} {self.outcome}"


class LedgerRollup(models.Model):
    """Ledger entries by bucket, journal kind and account type (the code before its `:`),
    signed debit-positive as in the ledger."""

    period = models.CharField(max_length=6, choices=Period.choices)
    bucket = models.DateTimeField()
    merchant_id = models.BigIntegerField()
    livemode = models.BooleanField()
    currency = models.CharField(max_length=3)
    kind = models.CharField(max_length=32)
    account_type = models.CharField(max_length=40)
    amount = models.BigIntegerField()
    entries = models.IntegerField()
    journals = models.IntegerField()

    class Meta:
        indexes = [
            models.Index(fields=["period", "merchant_id", "bucket"], name="ledger_rollup_scope"),
            models.Index(fields=["period", "bucket"], name="ledger_rollup_bucket"),
        ]

    def __str__(self) -> str:
        return f"{self.period} {self.bucket:%Y-%m-%d %H:%M} {self.kind} {self.account_type}"


class RollupWatermark(models.Model):
    """Where the last refresh ended (one row per rollup)."""

    name = models.CharField(max_length=40, unique=True)
    refreshed_until = models.DateTimeField()
    refreshed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name
