"""Authorizations are two-phase holds: a capture posts at most the held amount and releases
the rest; a hold is resolved exactly once; an expired hold cannot be captured."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from apps.core.errors import ConflictError, InvalidRequestError
from apps.ledger import chart, postings, selectors
from apps.ledger.models import LedgerAccount
from apps.ledger.services import (
    ledger_capture_hold,
    ledger_expire_hold,
    ledger_void_hold,
)
from tests.ledger.support import (
    CONNECTOR,
    LEDGER_DB,
    RECEIVABLE,
    balances,
    hold,
    row_counts,
    run_concurrently,
)

pytestmark = LEDGER_DB


def _pending(merchant_id: int, code: str) -> tuple[int, int]:
    account = LedgerAccount.objects.get(merchant_id=merchant_id, code=code)
    return account.pending_debits, account.pending_credits


def _capture(authorization, amount: int, key: str, psp_fee: int = 0):
    return ledger_capture_hold(
        hold=authorization,
        amount=amount,
        legs=postings.capture_legs(connector=CONNECTOR, amount=amount, psp_fee=psp_fee),
        idempotency_key=key,
    )


def test_a_hold_moves_pending_amounts_only(merchant_id):
    hold(merchant_id, 5000, key="auth")
    assert _pending(merchant_id, chart.AUTHORIZED_HOLDS) == (5000, 0)
    assert _pending(merchant_id, chart.AUTHORIZATIONS) == (0, 5000)
    assert set(balances(merchant_id).values()) == {0}


def test_a_partial_capture_posts_the_amount_and_releases_the_whole_hold(merchant_id):
    authorization = hold(merchant_id, 5000, key="auth")
    capture = _capture(authorization, 4000, "capture", psp_fee=120)

    assert capture.resolves_id == authorization.pk
    assert selectors.hold_status(hold=authorization) == "posted"
    assert _pending(merchant_id, chart.AUTHORIZED_HOLDS) == (0, 0)
    assert _pending(merchant_id, chart.AUTHORIZATIONS) == (0, 0)
    assert balances(merchant_id) == {
        chart.AUTHORIZED_HOLDS: 0,
        chart.AUTHORIZATIONS: 0,
        RECEIVABLE: 3880,
        chart.PSP_FEES: 120,
        chart.PLATFORM_FEE_REVENUE: 120,
        chart.MERCHANT_PENDING: 3880,
    }


def test_a_capture_never_exceeds_its_hold(merchant_id):
    authorization = hold(merchant_id, 5000, key="auth")
    before = row_counts()
    with pytest.raises(InvalidRequestError) as refused:
        _capture(authorization, 5001, "capture")
    assert refused.value.code == "capture_exceeds_hold"
    assert row_counts() == before
    assert selectors.hold_status(hold=authorization) == "pending"


def test_capture_legs_must_move_the_captured_amount(merchant_id):
    authorization = hold(merchant_id, 5000, key="auth")
    with pytest.raises(InvalidRequestError) as refused:
        ledger_capture_hold(
            hold=authorization,
            amount=3000,
            legs=postings.capture_legs(connector=CONNECTOR, amount=4000),
            idempotency_key="capture",
        )
    assert refused.value.code == "legs_amount_mismatch"


def test_a_capture_racing_a_void_exactly_one_wins(merchant_id):
    for round_ in range(6):
        # given a fresh hold
        authorization = hold(merchant_id, 1000, key=f"auth-{round_}")

        # when a capture and a void are sent at the same moment
        outcomes = run_concurrently(
            [
                lambda a=authorization, r=round_: _capture(a, 1000, f"capture-{r}"),
                lambda a=authorization, r=round_: ledger_void_hold(
                    hold=a, idempotency_key=f"void-{r}", reason="canceled"
                ),
            ]
        )

        # then exactly one resolved the hold and the other was told so
        winners = [journal for journal, _ in outcomes if journal is not None]
        losers = [error for _, error in outcomes if error is not None]
        assert len(winners) == 1
        assert len(losers) == 1
        assert isinstance(losers[0], ConflictError)
        assert losers[0].code == "hold_already_resolved"
        expected = "posted" if winners[0].kind == "capture" else "voided"
        assert selectors.hold_status(hold=authorization) == expected
    assert _pending(merchant_id, chart.AUTHORIZED_HOLDS) == (0, 0)


def test_a_void_releases_everything_and_posts_nothing(merchant_id):
    authorization = hold(merchant_id, 2500, key="auth")
    void = ledger_void_hold(hold=authorization, idempotency_key="void", reason="canceled")
    assert void.kind == "void"
    assert selectors.hold_status(hold=authorization) == "voided"
    assert _pending(merchant_id, chart.AUTHORIZATIONS) == (0, 0)
    with pytest.raises(ConflictError) as refused:
        _capture(authorization, 100, "late-capture")
    assert refused.value.code == "hold_already_resolved"


def test_an_expired_hold_cannot_be_captured(merchant_id):
    # given a hold that expires in an hour
    authorization = hold(merchant_id, 3000, key="auth", expires_in=timedelta(hours=1))
    with pytest.raises(ConflictError) as early:
        ledger_expire_hold(hold=authorization)
    assert early.value.code == "hold_not_expired"

    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        # when the capture comes after expiry, it is refused
        with pytest.raises(ConflictError) as refused:
            _capture(authorization, 3000, "capture")
        assert refused.value.code == "hold_expired"

        # and the expiry sweep releases it, once
        expiry = ledger_expire_hold(hold=authorization)
        assert ledger_expire_hold(hold=authorization).pk == expiry.pk
    assert selectors.hold_status(hold=authorization) == "expired"
    assert _pending(merchant_id, chart.AUTHORIZED_HOLDS) == (0, 0)
    assert selectors.pending_holds(merchant_id=merchant_id).count() == 0
