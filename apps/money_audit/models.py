"""The money audit's runs: one row per run (`manage.py money_audit`, the nightly beat task or
the soak), one row per invariant it checked. Evidence: written once, never edited.

Not to be confused with `apps.core.audit` (the append-only log of who changed what)."""

from django.db import models


class MoneyAuditRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running"
        PASSED = "passed"  # every invariant held (some may have been skipped)
        FAILED = "failed"  # at least one invariant broken

    class Trigger(models.TextChoices):
        COMMAND = "command"
        BEAT = "beat"

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    checks_held = models.PositiveSmallIntegerField(default=0)
    checks_broken = models.PositiveSmallIntegerField(default=0)
    checks_skipped = models.PositiveSmallIntegerField(default=0)
    # where the PSP's own record was read ("" when none was reachable) and the bounds used
    psp_record_url = models.CharField(max_length=300, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    # counts: intents by status, attempts by outcome, refunds, ledger, events, PSP record
    figures = models.JSONField(default=dict, blank=True)
    drift_check_run_id = models.BigIntegerField(null=True, blank=True)  # ledger's own run

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Money audit #{self.pk} ({self.status})"


class MoneyAuditCheck(models.Model):
    """One invariant in one run: held, broken (with the offending ids) or skipped (why)."""

    class Status(models.TextChoices):
        HELD = "held"
        BROKEN = "broken"
        SKIPPED = "skipped"

    run = models.ForeignKey(MoneyAuditRun, on_delete=models.CASCADE, related_name="checks")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=60)
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=8, choices=Status.choices)
    offender_count = models.PositiveIntegerField(default=0)
    # [{"id": "pi_…", "detail": "…"}], the first MAX_STORED_OFFENDERS of them
    offenders = models.JSONField(default=list, blank=True)
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["run_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "name"], name="money_audit_check_per_run"),
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.status}"
