"""Smart retries after a decline (docs/risk.md "Smart retries"): the decision for one declined
attempt, from the decline-handling table (admin-editable, cached per process for
CACHE_SECONDS) and the card networks' rules, with the reason recorded on the attempt.

Order: Mastercard's merchant advice codes 03/21 (do not try again) stop everything; then the
table (this connector type's raw code, its normalized code, `*`'s normalized code; unknown
codes: the hard/soft table, unknown codes retried elsewhere); a step-up only once (an attempt that
already asked for 3-D Secure is not stepped up again); Visa's reattempt limit (at most
VISA_REATTEMPT_LIMIT declines of the card in a day, counted by the velocity counters) stops
retries elsewhere."""

from __future__ import annotations

import threading
import time

from apps.psp_adapters.decline_codes import DECLINE_CLASSES, HARD, decline_class
from apps.risk.models import DeclineDecision, DeclineHandling

CACHE_SECONDS = 30.0
MASTERCARD_DO_NOT_RETRY = frozenset({"03", "21"})
VISA_REATTEMPT_LIMIT = 15

_table: dict[tuple[str, str], str] = {}
_loaded_at = 0.0
_lock = threading.Lock()


def _lookup() -> dict[tuple[str, str], str]:
    global _table, _loaded_at
    if time.monotonic() - _loaded_at > CACHE_SECONDS:
        rows = DeclineHandling.objects.values_list("connector_type", "code", "decision")
        table = {(t, c): d for t, c, d in rows}
        with _lock:
            _table, _loaded_at = table, time.monotonic()
    return _table


def default_decision(code: str) -> str:
    """Today's hard/soft table as decisions: what the table is seeded with, and what a code
    without a row gets."""
    if code == "authentication_required":
        return DeclineDecision.STEP_UP_3DS
    return (
        DeclineDecision.DO_NOT_RETRY
        if decline_class(code) == HARD
        else (DeclineDecision.RETRY_ELSEWHERE)
    )


def default_rows() -> list[tuple[str, str]]:
    return [(code, default_decision(code)) for code in sorted(DECLINE_CLASSES)]


def cache_clear() -> None:
    global _loaded_at
    _loaded_at = 0.0


def decide(
    *,
    connector_type: str,
    decline_code: str,
    raw_code: str,
    network_advice_code: str = "",
    card_brand: str = "",
    declines_per_card_daily: int = 0,
    three_ds_requested: bool = False,
) -> dict:
    """{"decision", "reason"} for a declined attempt."""
    if card_brand == "mastercard" and network_advice_code in MASTERCARD_DO_NOT_RETRY:
        return {
            "decision": DeclineDecision.DO_NOT_RETRY,
            "reason": f"mastercard_merchant_advice_code_{network_advice_code}",
        }
    table = _lookup()
    decision, source = None, ""
    for key in ((connector_type, raw_code), (connector_type, decline_code), ("*", decline_code)):
        if key[1] and key in table:
            decision, source = table[key], f"table:{key[0]}/{key[1]}"
            break
    if decision is None:  # no row: the hard/soft table (unknown codes are soft)
        decision, source = default_decision(decline_code), f"default:{decline_code}"
    if decision == DeclineDecision.STEP_UP_3DS and three_ds_requested:
        return {"decision": DeclineDecision.DO_NOT_RETRY, "reason": "already_authenticated"}
    if (
        decision == DeclineDecision.RETRY_ELSEWHERE
        and card_brand == "visa"
        and declines_per_card_daily >= VISA_REATTEMPT_LIMIT
    ):
        return {"decision": DeclineDecision.DO_NOT_RETRY, "reason": "visa_reattempt_limit"}
    return {"decision": str(decision), "reason": source}
