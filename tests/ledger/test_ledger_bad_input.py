"""Bad postings are refused with a stable code, and nothing at all is written."""

from __future__ import annotations

import pytest

from apps.core.errors import ConflictError, InvalidRequestError
from apps.ledger import chart, postings
from apps.ledger.chart import Leg
from apps.ledger.services import ledger_capture_hold, ledger_post
from tests.ledger.support import LEDGER_DB, RECEIVABLE, fund_available, hold, row_counts

pytestmark = LEDGER_DB


def _post(merchant_id: int, legs, *, currency: str = "eur", kind: str = "adjustment"):
    return ledger_post(
        merchant_id=merchant_id,
        livemode=False,
        currency=currency,
        kind=kind,
        idempotency_key="bad",
        legs=legs,
    )


@pytest.mark.parametrize(
    ("legs", "currency", "code"),
    [
        (
            [Leg(RECEIVABLE, 100, currency="usd"), Leg(chart.MERCHANT_PENDING, -100)],
            "eur",
            "currency_mismatch",
        ),
        ([Leg.debit(RECEIVABLE, 0), Leg.credit(chart.MERCHANT_PENDING, 0)], "eur", "amount_zero"),
        (
            [Leg.debit(RECEIVABLE, 100), Leg.credit(chart.MERCHANT_PENDING, 99)],
            "eur",
            "journal_unbalanced",
        ),
        ([Leg.debit(RECEIVABLE, 100)], "eur", "journal_unbalanced"),
        ([], "eur", "legs_missing"),
        ([Leg.debit("cash_drawer", 1), Leg.credit(RECEIVABLE, 1)], "eur", "account_code_invalid"),
        ([Leg.debit(RECEIVABLE, 1.5), Leg.credit(RECEIVABLE, 1.5)], "eur", "amount_invalid"),
        (
            [Leg.debit(RECEIVABLE, 1), Leg.credit(chart.MERCHANT_PENDING, 1)],
            "xyz",
            "currency_invalid",
        ),
    ],
)
def test_invalid_legs_are_refused_and_nothing_is_written(merchant_id, legs, currency, code):
    before = row_counts()
    with pytest.raises(InvalidRequestError) as refused:
        _post(merchant_id, legs, currency=currency)
    assert refused.value.code == code
    assert row_counts() == before


def test_an_overdraft_of_a_non_negative_account_is_refused_and_nothing_is_written(merchant_id):
    # given 500 available
    fund_available(merchant_id, 500, key="fund")
    before = row_counts()
    # when a payout of 501 is posted
    with pytest.raises(ConflictError) as refused:
        _post(merchant_id, postings.payout_legs(amount=501), kind="payout")
    # then it is refused and nothing changed
    assert refused.value.code == "insufficient_balance"
    assert row_counts() == before


def test_a_capture_in_another_currency_than_its_hold_is_refused(merchant_id):
    authorization = hold(merchant_id, 1000, key="auth")
    before = row_counts()
    with pytest.raises(InvalidRequestError) as refused:
        ledger_capture_hold(
            hold=authorization,
            amount=1000,
            legs=[Leg(RECEIVABLE, 1000, currency="usd"), Leg(chart.MERCHANT_PENDING, -1000)],
            idempotency_key="capture",
        )
    assert refused.value.code == "currency_mismatch"
    assert row_counts() == before


def test_holds_and_reversals_cannot_be_posted_directly(merchant_id):
    for kind in ("authorization_hold", "void", "reversal", "payout_failure", "bogus"):
        with pytest.raises(InvalidRequestError) as refused:
            _post(merchant_id, postings.settlement_legs(connector="c", amount=1), kind=kind)
        assert refused.value.code == "kind_invalid"
