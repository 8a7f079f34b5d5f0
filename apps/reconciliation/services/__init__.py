"""Reconciliation writes (issue 14). Callers import from here
(`from apps.reconciliation import services`); the package is split by what it does:
- `storage`: raw files on disk, hash-named;
- `loading`: one report, set-based (COPY into staging, matching in one INSERT … SELECT);
- `posting`: the ledger journals of a loaded report;
- `runs`: fetching, runs, missing items, counts, events, uploads;
- `resolutions`: finance's actions on a discrepancy."""

from apps.reconciliation.services.resolutions import (
    PERMISSIONS,
    discrepancy_accept_psp,
    discrepancy_expect_later,
    discrepancy_link,
    discrepancy_reopen,
    discrepancy_write_off,
)
from apps.reconciliation.services.runs import (
    business_days_before,
    profile_for,
    reconciliation_run,
    reconciliation_run_all,
    report_receive,
    report_upload,
    summary_line,
)

__all__ = [
    "PERMISSIONS",
    "business_days_before",
    "discrepancy_accept_psp",
    "discrepancy_expect_later",
    "discrepancy_link",
    "discrepancy_reopen",
    "discrepancy_write_off",
    "profile_for",
    "reconciliation_run",
    "reconciliation_run_all",
    "report_receive",
    "report_upload",
    "summary_line",
]
