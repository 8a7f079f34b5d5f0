"""The dispute lifecycle's rule, checked against random notification sequences: a stage never
goes back, a status never goes back within its stage, and every state reached fits its stage."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from apps.disputes.lifecycle import INQUIRY_STATUSES, STAGE_RANK, STATUS_RANK, plan
from apps.psp_adapters.disputes import ADYEN_EVENTS, adyen_dispute

STAGES = ["", *STAGE_RANK]
STATUSES = ["", *STATUS_RANK]


@given(st.lists(st.tuples(st.sampled_from(STAGES), st.sampled_from(STATUSES)), max_size=30))
def test_random_notifications_only_move_forward(notifications):
    stage, status = "inquiry", "warning_needs_response"
    for new_stage, new_status in notifications:
        move = plan(stage=stage, status=status, new_stage=new_stage, new_status=new_status)
        assert STAGE_RANK[move.stage] >= STAGE_RANK[stage]
        if move.stage == stage:
            assert STATUS_RANK[move.status] >= STATUS_RANK[status]
        assert (move.stage == "inquiry") == (move.status in INQUIRY_STATUSES)
        assert move.changed == ((move.stage, move.status) != (stage, status))
        stage, status = move.stage, move.status


def test_adyen_maps_the_psp_status_before_the_event_code():
    # a reinstatement reported with disputeStatus Lost moves money, never the dispute to won
    reversed_but_lost = adyen_dispute("CHARGEBACK_REVERSED", "Lost")
    assert (reversed_but_lost.status, reversed_but_lost.funds) == ("lost", "reinstated")
    assert adyen_dispute("CHARGEBACK_REVERSED", "").status == "won"
    assert adyen_dispute("NOTIFICATION_OF_CHARGEBACK", "Undefended").status == (
        "warning_needs_response"
    )
    assert adyen_dispute("CHARGEBACK", "Responded").status == "under_review"
    for code in ADYEN_EVENTS:
        adyen_dispute(code, "")  # every documented code maps
