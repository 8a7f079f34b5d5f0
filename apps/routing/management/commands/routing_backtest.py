"""python manage.py routing_backtest --profile rp_… [--version N] [--since 30d] [--json]"""

from __future__ import annotations

import json
import re

from django.core.management.base import BaseCommand, CommandError

from apps.routing import selectors
from apps.routing.backtest import routing_backtest
from apps.routing.models import RoutingProfile


def parse_days(value: str) -> int:
    match = re.fullmatch(r"(\d+)d?", value.strip())
    if not match or not 1 <= int(match.group(1)) <= 365:
        raise CommandError("--since takes a number of days from 1 to 365, e.g. 30d")
    return int(match.group(1))


class Command(BaseCommand):
    help = (
        "Replays the merchant's recent payments through a routing profile version and "
        "reports, per connector, predicted share, expected fees and authorization rate "
        "next to what actually happened."
    )

    def add_arguments(self, parser):
        # our --version is the profile version's, not Django's "print the version and exit"
        parser.conflict_handler = parser._optionals.conflict_handler = "resolve"
        parser.add_argument("--profile", required=True, help="routing profile id (rp_…)")
        parser.add_argument("--version", type=int, help="default: the latest version")
        parser.add_argument("--since", default="30d", help="period, e.g. 30d (default)")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args, **options):
        profile = RoutingProfile.objects.filter(public_id=options["profile"]).first()
        if profile is None:
            raise CommandError(f"No such routing profile: {options['profile']!r}")
        if options["version"] is None:
            version = selectors.routing_profile_latest_version(profile=profile)
        else:
            version = profile.versions.filter(number=options["version"]).first()
        if version is None:
            raise CommandError(f"{profile.public_id} has no version {options['version']}")
        report = routing_backtest(version=version, days=parse_days(options["since"]))
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            self.stdout.write(report.table())
