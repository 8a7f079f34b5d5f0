"""`manage.py simulator_faults <connector> [options]`: change a simulated PSP's faults at run time.

Examples:
    manage.py simulator_faults mca_stripe --latency-ms 200 --latency-jitter-ms 50
    manage.py simulator_faults mca_stripe --error-rate 0.1 --seed 7
    manage.py simulator_faults mca_adyen --outage on
    manage.py simulator_faults mca_adyen --response-lost-rate 1 --limit 1
    manage.py simulator_faults mca_adyen --reset
Options not given stay as they are (the call PATCHes); --replace starts from no faults.
The simulator's URL comes from SIMULATOR_URL (default http://127.0.0.1:8090).
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from apps.psp_simulator.control_client import SimulatorControlError, run_simulator_faults


class Command(BaseCommand):
    help = "Show or change fault injection for one connector of the PSP simulator."

    def add_arguments(self, parser) -> None:
        parser.add_argument("connector", help="connector name (the <name> in /stripe/<name>/…)")
        parser.add_argument("--url", dest="base_url", help="simulator URL (default SIMULATOR_URL)")
        parser.add_argument("--reset", action="store_true", help="clear all faults first")
        parser.add_argument("--replace", action="store_true", help="unset options go to defaults")
        parser.add_argument("--show", action="store_true", help="only print the current faults")
        latency = parser.add_argument_group("latency")
        latency.add_argument("--latency-ms", type=float)
        latency.add_argument("--latency-jitter-ms", type=float)
        latency.add_argument(
            "--latency-distribution", choices=("fixed", "normal", "lognormal", "pareto")
        )
        latency.add_argument("--latency-stddev-ms", type=float, help="normal")
        latency.add_argument("--latency-sigma", type=float, help="lognormal shape")
        latency.add_argument("--latency-alpha", type=float, help="pareto shape")
        latency.add_argument("--latency-max-ms", type=float)
        errors = parser.add_argument_group("errors (rates 0..1)")
        errors.add_argument("--error-rate", type=float, help="HTTP 500, not processed")
        errors.add_argument("--unavailable-rate", type=float, help="HTTP 503, not processed")
        errors.add_argument(
            "--processed-then-500-rate", type=float, help="processed, then HTTP 500"
        )
        errors.add_argument(
            "--processed-then-500-replays-error",
            choices=("on", "off"),
            help="on: idempotent replays return the 500 too (Stripe's own behaviour)",
        )
        errors.add_argument("--timeout-rate", type=float, help="hang, not processed")
        errors.add_argument("--timeout-s", "--timeout-delay-s", dest="timeout_s", type=float)
        errors.add_argument(
            "--response-lost-rate", type=float, help="processed, answer held back past timeout"
        )
        errors.add_argument(
            "--response-lost-s", "--response-lost-delay-s", dest="response_lost_s", type=float
        )
        errors.add_argument(
            "--rejected-rate", type=float, help="refused at once with --rejected-status"
        )
        errors.add_argument(
            "--rejected-status", type=int, help="400, 401, 403, 404, 422 or 429 (default 404)"
        )
        outage = parser.add_argument_group("outage")
        outage.add_argument("--outage", choices=("on", "off"))
        outage.add_argument("--outage-from", help="unix seconds, ISO 8601, or +N seconds")
        outage.add_argument("--outage-until", help="unix seconds, ISO 8601, or +N seconds")
        outage.add_argument("--outage-mode", choices=("503", "drop"))
        scope = parser.add_argument_group("scope")
        scope.add_argument(
            "--operations",
            help="comma-separated: authorize,capture,cancel,refund,retrieve,payout (or 'all')",
        )
        scope.add_argument("--limit", type=int, help="inject at most N faults, then stop")
        scope.add_argument("--seed", type=int, help="seed the fault RNG (reproducible runs)")

    def handle(self, *args, **options) -> None:
        connector = options.pop("connector")
        for django_option in (
            "verbosity",
            "settings",
            "pythonpath",
            "traceback",
            "no_color",
            "force_color",
            "skip_checks",
        ):
            options.pop(django_option, None)
        try:
            result = run_simulator_faults(connector, **options)
        except (SimulatorControlError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(result, indent=2))
