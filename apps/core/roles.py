"""Staff roles are Django groups. Model permissions are granted by pattern so that apps added
later get the right access without editing this table by hand; money-moving permissions
(core.BackOfficeAction) are listed by name."""

from __future__ import annotations

from fnmatch import fnmatch

from django.contrib.auth.models import Group, Permission
from django.db import transaction

FINANCE, OPS, SUPPORT, ADMIN = "finance", "ops", "support", "admin"
RISK = "risk"  # Radar: lists, rules, the review queue (apps/risk)
ROLES = (FINANCE, OPS, SUPPORT, ADMIN, RISK)

# "app_label.codename" patterns
ROLE_PERMISSIONS: dict[str, list[str]] = {
    SUPPORT: [
        "*.view_*",
    ],
    FINANCE: [
        "*.view_*",
        "ledger.*",
        "reconciliation.*",
        "payouts.*",
        "core.refund_payment",
        "core.retry_payout",
        "core.write_off_discrepancy",
        "core.post_ledger_adjustment",
        "disputes.*",
    ],
    OPS: [
        "*.view_*",
        "routing.*",
        "connectors.*",
        "events.*",
        "core.capture_payment",
        "core.cancel_payment",
        "core.replay_webhook",
        "core.force_breaker",
        "core.manage_api_keys",
        # smart retries: the decline-handling table (apps/risk)
        "risk.view_declinehandling",
        "risk.add_declinehandling",
        "risk.change_declinehandling",
        "disputes.resolve_dispute_notification",
    ],
    ADMIN: ["*"],
    RISK: [
        "risk.*",
        "intents.view_*",
        "vault.view_*",
        "merchants.view_merchant",
    ],
}
# Never granted by pattern: nobody edits evidence or raw ledger rows through the admin.
NEVER_GRANTED = [
    "core.change_auditlogentry",
    "core.delete_auditlogentry",
    "core.add_auditlogentry",
    "ledger.change_*",
    "ledger.delete_*",
    "ledger.add_*",
    "money_audit.change_*",
    "money_audit.delete_*",
    "money_audit.add_*",
]


def _matches(label: str, patterns: list[str]) -> bool:
    return any(fnmatch(label, p) for p in patterns)


@transaction.atomic
def roles_bootstrap() -> dict[str, int]:
    """Creates or updates the four groups. Idempotent."""
    permissions = list(Permission.objects.select_related("content_type"))
    counts = {}
    for role in ROLES:
        group, _ = Group.objects.get_or_create(name=role)
        granted = [
            p
            for p in permissions
            if _matches(f"{p.content_type.app_label}.{p.codename}", ROLE_PERMISSIONS[role])
            and not _matches(f"{p.content_type.app_label}.{p.codename}", NEVER_GRANTED)
        ]
        group.permissions.set(granted)
        counts[role] = len(granted)
    return counts
