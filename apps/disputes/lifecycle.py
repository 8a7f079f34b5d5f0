"""Which moves a dispute may make: forward only, a new stage may reopen. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass

STAGE_RANK = {"inquiry": 0, "chargeback": 1, "pre_arbitration": 2, "arbitration": 3}
# rank of a status within its stage; the closing ones share the top rank
STATUS_RANK = {
    "warning_needs_response": 0,
    "warning_under_review": 1,
    "warning_closed": 2,
    "needs_response": 0,
    "under_review": 1,
    "won": 2,
    "lost": 2,
    "accepted": 2,
    "expired": 2,
}
INQUIRY_STATUSES = frozenset({"warning_needs_response", "warning_under_review", "warning_closed"})


@dataclass(frozen=True)
class Move:
    stage: str
    status: str
    changed: bool
    reason: str
    stale: bool = False  # out of order or contradicting: recorded, not applied


def plan(*, stage: str, status: str, new_stage: str, new_status: str) -> Move:
    """Where a notification would take a dispute at (stage, status). `new_stage`/`new_status`
    empty: the notification keeps that axis. An older stage, or a status behind (or beside,
    once closed) the current one in the same stage, is refused: (current, changed False)."""
    target_stage = new_stage or stage
    if STAGE_RANK[target_stage] < STAGE_RANK[stage]:
        return Move(stage, status, False, f"stage {target_stage} is behind {stage}", True)
    if not new_status:
        if target_stage == stage:
            return Move(stage, status, False, "no status in the notification")
        new_status = "warning_needs_response" if target_stage == "inquiry" else "needs_response"
    if (target_stage == "inquiry") != (new_status in INQUIRY_STATUSES):
        return Move(
            stage, status, False, f"status {new_status} does not fit stage {target_stage}", True
        )
    if target_stage != stage:
        return Move(target_stage, new_status, True, f"new stage {target_stage}")
    if new_status == status:
        return Move(stage, status, False, f"already {status}")
    if STATUS_RANK[new_status] <= STATUS_RANK[status]:
        return Move(stage, status, False, f"status {new_status} is not after {status}", True)
    return Move(stage, new_status, True, f"{status} -> {new_status}")
