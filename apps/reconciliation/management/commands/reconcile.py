"""`manage.py reconcile --connector mca_… --date YYYY-MM-DD [--file report.csv]` (issue 14):
one reconciliation run, printing its progress and a summary. Safe to re-run."""

from __future__ import annotations

import json
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from apps.core.audit import Actor
from apps.reconciliation import services


class Command(BaseCommand):
    help = "Reconcile a connector's settlement reports for a date (fetch, load, match, post)."

    def add_arguments(self, parser):
        parser.add_argument("--connector", required=True, help="connector public id (mca_…)")
        parser.add_argument("--date", help="run date YYYY-MM-DD (default: yesterday, UTC)")
        parser.add_argument("--file", help="load this report file instead of fetching")
        parser.add_argument("--no-fetch", action="store_true", help="do not ask the PSP")
        parser.add_argument("--json", action="store_true", help="print the run as JSON")

    def handle(self, *args, **options):
        from apps.connectors import selectors as connector_selectors
        from apps.core.errors import PlatformError

        try:
            connector = connector_selectors.connector_get_unscoped(public_id=options["connector"])
        except PlatformError as exc:
            raise CommandError(str(exc)) from None
        try:
            run_date = date.fromisoformat(options["date"]) if options["date"] else None
        except ValueError:
            raise CommandError("--date must be YYYY-MM-DD") from None

        def progress(message: str) -> None:
            self.stdout.write(message)
            self.stdout.flush()

        actor = Actor.system("manage.py reconcile")
        if options["file"]:
            with open(options["file"], "rb") as handle:
                chunks = iter(lambda: handle.read(1 << 16), b"")
                report, is_new = services.report_receive(
                    connector=connector,
                    name=options["file"].rsplit("/", 1)[-1],
                    chunks=chunks,
                    source="uploaded",
                )
            if not is_new:
                progress(f"{report.name}: already received ({report.status})")
            run = services.reconciliation_run(
                connector=connector,
                run_date=run_date,
                trigger="command",
                reports=[report],
                progress=progress,
                actor=actor,
            )
        else:
            run = services.reconciliation_run(
                connector=connector,
                run_date=run_date,
                trigger="command",
                fetch=not options["no_fetch"],
                progress=progress,
                actor=actor,
            )
        self.stdout.write(f"summary: {services.summary_line(run)}")
        for kind, figures in sorted(run.counts.get("discrepancies", {}).items()):
            self.stdout.write(f"  {kind}: {figures['count']} ({figures['amount']} minor units)")
        for currency, money in sorted(run.amounts.items()):
            self.stdout.write(f"  {currency}: {json.dumps(money, sort_keys=True)}")
        if run.timings:
            self.stdout.write(f"timings (s): {json.dumps(run.timings, sort_keys=True)}")
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "run": run.public_id,
                        "status": run.status,
                        "counts": run.counts,
                        "amounts": run.amounts,
                    }
                )
            )
        if run.status != "succeeded":
            raise CommandError(f"run {run.public_id} {run.status}: {run.error}")
