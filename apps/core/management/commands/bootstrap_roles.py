from django.core.management.base import BaseCommand

from apps.core.roles import roles_bootstrap


class Command(BaseCommand):
    help = "Create or update the staff groups (finance, ops, support, admin) and their permissions."

    def handle(self, *args, **options):
        counts = roles_bootstrap()
        for role, count in counts.items() if options["verbosity"] else ():
            self.stdout.write(f"role {role}: {count} permissions")
