"""Ledger writes: every money movement is one balanced, append-only journal.

Callers import the services from here (`from apps.ledger import services`); the package is split
by what the services move:
- `posting`: opening accounts and posting a balanced journal (`ledger_post`);
- `holds`: two-phase authorizations, a hold resolved once by a capture, a void or an expiry;
- `reversals`: the exact negation of a journal, once (failed payouts too);
- `settlement`: pending funds released to available (per capture after its delay, or an amount);
- `drift`: the drift check that recomputes every account from its entries;
- `engine`: how a journal is written (one transaction, locks in id order, retries, replays),
  under all of the above; `_shared`: the input checks they share.
"""

from apps.ledger.services.drift import MAX_FINDINGS_PER_CHECK, ledger_check_drift
from apps.ledger.services.holds import (
    ledger_capture_hold,
    ledger_expire_hold,
    ledger_hold,
    ledger_void_hold,
)
from apps.ledger.services.posting import POSTABLE_KINDS, ledger_accounts_open, ledger_post
from apps.ledger.services.reversals import ledger_reverse
from apps.ledger.services.settlement import (
    ledger_release_pending_to_available,
    ledger_release_settled,
    ledger_release_settled_amount,
)

__all__ = [
    "MAX_FINDINGS_PER_CHECK",
    "POSTABLE_KINDS",
    "ledger_accounts_open",
    "ledger_capture_hold",
    "ledger_check_drift",
    "ledger_expire_hold",
    "ledger_hold",
    "ledger_post",
    "ledger_release_pending_to_available",
    "ledger_release_settled",
    "ledger_release_settled_amount",
    "ledger_reverse",
    "ledger_void_hold",
]
