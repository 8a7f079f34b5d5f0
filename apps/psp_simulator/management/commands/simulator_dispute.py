"""`manage.py simulator_dispute`: open a dispute on any captured payment of the PSP simulator,
or play the issuer's next move on one.

Examples:
    manage.py simulator_dispute open <connector> <payment id> [--reason fraudulent]
        [--amount 500] [--inquiry] [--due-in-days 7]
    manage.py simulator_dispute escalate|second_chargeback|expire|win|lose <dispute id>
    manage.py simulator_dispute list [<connector>]
The connector is the simulator's name (the <name> in /stripe/<name>/…); the payment id is the
PSP's (Stripe pi_…, Adyen pspReference: the intent's `psp_reference`). The simulator's URL
comes from SIMULATOR_URL (default http://127.0.0.1:8090)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from apps.psp_simulator.control_client import SimulatorControl, SimulatorControlError

ACTIONS = ("escalate", "second_chargeback", "expire", "win", "lose")


class Command(BaseCommand):
    help = "Open a dispute on a captured payment of the PSP simulator, or move one."

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=("open", "list", *ACTIONS))
        parser.add_argument("target", nargs="?", help="connector (open, list) or dispute id")
        parser.add_argument("payment", nargs="?", help="open: the PSP's payment id")
        parser.add_argument("--reason", default="fraudulent")
        parser.add_argument("--amount", type=int)
        parser.add_argument("--inquiry", action="store_true")
        parser.add_argument("--due-in-days", type=float, default=7)
        parser.add_argument("--url", dest="base_url", help="simulator URL (default SIMULATOR_URL)")

    def handle(self, *args, **options) -> None:
        control = SimulatorControl(options.get("base_url"))
        action, target = options["action"], options.get("target")
        try:
            if action == "list":
                result = control.disputes(target)
            elif action == "open":
                if not target or not options.get("payment"):
                    raise CommandError("open needs a connector and a payment id")
                extra = {"reason": options["reason"], "due_in_days": options["due_in_days"]}
                if options.get("amount") is not None:
                    extra["amount"] = options["amount"]
                if options["inquiry"]:
                    extra["inquiry"] = True
                result = control.open_dispute(target, options["payment"], **extra)
            else:
                if not target:
                    raise CommandError(f"{action} needs a dispute id")
                result = control.dispute_action(target, action)
        except SimulatorControlError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(result, indent=2))
