"""Chart-of-accounts helpers: business events to balanced legs (pure, no database)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.core.errors import InvalidRequestError
from apps.ledger import chart, postings
from apps.ledger.postings import Split


def _as_dict(legs) -> dict[str, int]:
    return {leg.account: leg.amount for leg in legs}


def test_capture_legs_split_the_money_between_psp_fees_sellers_and_merchant():
    legs = postings.capture_legs(
        connector="conn_1",
        amount=10_000,
        psp_fee=290,
        platform_fee=500,
        splits=[Split("s_1", 6000), Split("s_2", 1000)],
    )
    assert _as_dict(legs) == {
        "psp_receivable:conn_1": 9710,  # the PSP settles net of its fee
        chart.PSP_FEES: 290,
        chart.PLATFORM_FEE_REVENUE: -790,
        "seller_pending:s_1": -6000,
        "seller_pending:s_2": -1000,
        chart.MERCHANT_PENDING: -(10_000 - 290 - 500 - 7000),
    }
    assert sum(leg.amount for leg in legs) == 0


def test_capture_legs_refuse_fees_and_splits_above_the_amount():
    with pytest.raises(InvalidRequestError) as refused:
        postings.capture_legs(connector="c", amount=100, psp_fee=10, splits=[Split("s", 95)])
    assert refused.value.code == "splits_exceed_amount"


def test_the_first_refund_takes_back_each_sellers_floor_share_and_the_merchant_the_rest():
    legs = postings.refund_legs(
        connector="c",
        amount=333,
        captured_amount=1000,
        splits=[Split("s_1", 500), Split("s_2", 250)],
    )
    assert _as_dict(legs) == {
        chart.MERCHANT_PENDING: 333 - 166 - 83,
        "seller_pending:s_1": 166,  # floor(333 * 500 / 1000)
        "seller_pending:s_2": 83,  # floor(333 * 250 / 1000)
        "psp_receivable:c": -333,
    }


@settings(max_examples=200, deadline=None)
@given(
    captured=st.integers(1, 1_000_000),
    shares=st.lists(st.integers(0, 1000), min_size=1, max_size=4),
    cuts=st.lists(st.integers(1, 1000), min_size=1, max_size=6),
)
def test_each_refund_totals_exactly_and_no_seller_gives_back_more_than_its_split(
    captured, shares, cuts
):
    # given splits that fit in the capture
    total_weight = sum(shares) or 1
    splits = [Split(f"s_{i}", captured * w // (total_weight * 2)) for i, w in enumerate(shares)]
    splits = [s for s in splits if s.amount > 0]
    # and partial refunds that add up to the captured amount
    weight = sum(cuts)
    amounts = [captured * c // weight for c in cuts]
    amounts[-1] += captured - sum(amounts)
    amounts = [a for a in amounts if a > 0]

    taken: dict[str, int] = {}
    refunded = 0
    for amount in amounts:
        legs = postings.refund_legs(
            connector="c",
            amount=amount,
            captured_amount=captured,
            previously_refunded=refunded,
            splits=splits,
        )
        # each refund's legs balance, total the refund, and only debit merchant and sellers
        assert sum(leg.amount for leg in legs) == 0
        assert sum(leg.amount for leg in legs if leg.amount > 0) == amount
        assert [leg.account for leg in legs if leg.amount < 0] == ["psp_receivable:c"]
        for leg in legs:
            if leg.account.startswith("seller_pending:"):
                taken[leg.account] = taken.get(leg.account, 0) + leg.amount
        refunded += amount

    for split in splits:
        assert taken.get(chart.seller_pending(split.seller_id), 0) <= split.amount


@settings(max_examples=100, deadline=None)
@given(
    captured=st.integers(1, 1_000_000),
    shares=st.lists(st.integers(1, 1000), min_size=1, max_size=4),
    first=st.floats(0.01, 0.99),
)
def test_refunds_that_add_up_to_the_capture_take_back_exactly_each_split(captured, shares, first):
    total_weight = sum(shares)
    splits = [Split(f"s_{i}", captured * w // (total_weight * 2)) for i, w in enumerate(shares)]
    splits = [s for s in splits if s.amount > 0]
    part = max(1, min(captured - 1, int(captured * first))) if captured > 1 else captured
    taken: dict[str, int] = {}
    refunded = 0
    for amount in (part, captured - part):
        if amount == 0:
            continue
        shares_now = postings.split_refund_shares(
            amount=amount, captured_amount=captured, previously_refunded=refunded, splits=splits
        )
        for seller, share in shares_now.items():
            taken[seller] = taken.get(seller, 0) + share
        refunded += amount
    # two refunds of reasonable size: the floors telescope, nothing had to be trimmed
    if min(part, captured - part) >= len(splits) * 2 or captured == part:
        assert taken == {s.seller_id: s.amount for s in splits}


def test_a_tiny_last_refund_is_trimmed_so_it_still_totals_exactly():
    splits = [Split("a", 1), Split("b", 1)]
    first = postings.refund_legs(
        connector="c", amount=3, captured_amount=4, previously_refunded=0, splits=splits
    )
    last = postings.refund_legs(
        connector="c", amount=1, captured_amount=4, previously_refunded=3, splits=splits
    )
    assert {leg.account: leg.amount for leg in first}[chart.MERCHANT_PENDING] == 3
    assert sorted(leg.amount for leg in last) == [-1, 1]


def test_refunds_cannot_exceed_the_capture():
    with pytest.raises(InvalidRequestError) as refused:
        postings.refund_legs(connector="c", amount=60, captured_amount=100, previously_refunded=50)
    assert refused.value.code == "refund_exceeds_capture"


def test_chargebacks_hit_the_merchant_or_the_platform():
    assert _as_dict(postings.chargeback_legs(connector="c", amount=1000, dispute_fee=1500)) == {
        chart.MERCHANT_PENDING: 2500,
        "psp_receivable:c": -2500,
    }
    absorbed = postings.chargeback_legs(connector="c", amount=1000, merchant_liable=False)
    assert _as_dict(absorbed) == {chart.DISPUTE_LOSSES: 1000, "psp_receivable:c": -1000}
    won = postings.chargeback_reversal_legs(connector="c", amount=1000)
    assert _as_dict(won) == {"psp_receivable:c": 1000, chart.MERCHANT_PENDING: -1000}


def test_payout_settlement_and_release_legs():
    assert _as_dict(postings.payout_legs(amount=5, seller_id="s")) == {
        "seller_available:s": 5,
        chart.PAYOUTS_IN_TRANSIT: -5,
    }
    assert _as_dict(postings.payout_paid_legs(amount=5)) == {
        chart.PAYOUTS_IN_TRANSIT: 5,
        chart.BANK: -5,
    }
    assert _as_dict(postings.settlement_legs(connector="c", amount=5)) == {
        chart.BANK: 5,
        "psp_receivable:c": -5,
    }
    assert _as_dict(postings.funds_release_legs(amount=5)) == {
        chart.MERCHANT_PENDING: 5,
        chart.MERCHANT_AVAILABLE: -5,
    }


@pytest.mark.parametrize("code", ["psp_receivable", "psp_receivable:", "bank:x", "nope", ""])
def test_account_codes_outside_the_chart_are_refused(code):
    with pytest.raises(InvalidRequestError) as refused:
        chart.account_type(code)
    assert refused.value.code == "account_code_invalid"
