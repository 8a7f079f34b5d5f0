"""`manage.py money_audit`: check every money invariant, print the figures and what broke
(with the offending ids), store the run (admin: Money audit → runs). Exit status 1 when an
invariant is broken, 0 when all held (skipped ones do not count)."""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand

from apps.money_audit import report, services
from apps.money_audit.models import MoneyAuditRun


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument(
            "--simulator-url",
            help="the PSP simulator whose record to compare with "
            "(default: settings.MONEY_AUDIT_SIMULATOR_URL)",
        )
        parser.add_argument("--no-psp", action="store_true", help="skip the PSP-side checks")
        parser.add_argument(
            "--log-file",
            action="append",
            dest="log_files",
            metavar="PATH",
            help="a log file (or glob) to scan for card numbers; repeatable "
            "(default: settings.MONEY_AUDIT_LOG_FILES)",
        )
        parser.add_argument(
            "--processing-grace",
            type=int,
            metavar="SECONDS",
            help="an intent may stay processing this long (default: settings)",
        )
        parser.add_argument(
            "--unresolved-after",
            type=int,
            metavar="SECONDS",
            help="an unknown attempt or a pending refund older than this is broken "
            "(default: settings)",
        )
        parser.add_argument(
            "--overdue-after",
            type=int,
            metavar="SECONDS",
            help="outbox rows, webhook deliveries and PSP notifications may be this late "
            "(default: settings)",
        )
        parser.add_argument("--json", action="store_true", help="print the run as JSON")

    def handle(self, *args, **options):
        parameters = services.AuditParameters.from_settings(
            simulator_url="" if options["no_psp"] else options["simulator_url"],
            log_files=options["log_files"],
            processing_grace_seconds=options["processing_grace"],
            unresolved_after_seconds=options["unresolved_after"],
            overdue_after_seconds=options["overdue_after"],
        )
        run = services.money_audit_run(trigger=MoneyAuditRun.Trigger.COMMAND, parameters=parameters)
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(run), indent=2, default=str))
        else:
            self.stdout.write(report.as_text(run))
        self.stdout.flush()
        if run.status == MoneyAuditRun.Status.FAILED:
            sys.exit(1)
