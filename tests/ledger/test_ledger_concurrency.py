"""Hot accounts under concurrent postings: no lost update, no deadlock reaching the caller, and a
non-negative balance that is never overdrawn."""

from __future__ import annotations

import random

from apps.core.errors import ConflictError
from apps.ledger import chart, postings
from apps.ledger.chart import Leg
from apps.ledger.services import ledger_post
from tests.ledger.support import LEDGER_DB, balances, fund_available, run_concurrently

pytestmark = LEDGER_DB

SELLER = chart.seller_available("s_1")


def test_concurrent_transfers_in_both_directions_lose_no_update(merchant_id):
    # given two funded, non-negative hot accounts
    fund_available(merchant_id, 1_000_000, key="fund-merchant")
    fund_available(merchant_id, 1_000_000, key="fund-seller", seller_id="s_1")
    start = balances(merchant_id)
    rng = random.Random(7)
    plan = [[(rng.choice((1, -1)), rng.randint(1, 5_000)) for _ in range(25)] for _ in range(8)]

    def worker(index: int):
        def run():
            for n, (direction, amount) in enumerate(plan[index]):
                source, target = (
                    (chart.MERCHANT_AVAILABLE, SELLER)
                    if direction > 0
                    else (SELLER, chart.MERCHANT_AVAILABLE)
                )
                # legs in both orders: the service must lock in one (sorted) order anyway
                legs = postings.transfer_legs(amount=amount, from_account=source, to_account=target)
                ledger_post(
                    merchant_id=merchant_id,
                    livemode=False,
                    currency="eur",
                    kind="transfer",
                    idempotency_key=f"transfer:{index}:{n}",
                    legs=legs if n % 2 else list(reversed(legs)),
                )

        return run

    # when 8 threads transfer back and forth at once
    outcomes = run_concurrently([worker(i) for i in range(8)])

    # then no call failed (deadlocks are retried inside) and the end state is the model's
    assert [error for _, error in outcomes] == [None] * 8
    moved = sum(direction * amount for steps in plan for direction, amount in steps)
    end = balances(merchant_id)
    assert end[chart.MERCHANT_AVAILABLE] == start[chart.MERCHANT_AVAILABLE] - moved
    assert end[SELLER] == start[SELLER] + moved


def test_concurrent_payouts_never_overdraw_the_available_balance(merchant_id):
    # given 10_000 available
    fund_available(merchant_id, 10_000, key="fund")

    def payout(n: int):
        return lambda: ledger_post(
            merchant_id=merchant_id,
            livemode=False,
            currency="eur",
            kind="payout",
            idempotency_key=f"po_{n}",
            legs=postings.payout_legs(amount=700),
        )

    # when 24 payouts of 700 race for it
    outcomes = run_concurrently([payout(n) for n in range(24)])

    # then exactly floor(10_000 / 700) = 14 succeed and the rest are refused cleanly
    succeeded = [journal for journal, _ in outcomes if journal is not None]
    refused = [error for _, error in outcomes if error is not None]
    assert len(succeeded) == 10_000 // 700
    assert all(isinstance(e, ConflictError) and e.code == "insufficient_balance" for e in refused)
    end = balances(merchant_id)
    assert end[chart.MERCHANT_AVAILABLE] == 10_000 - 14 * 700
    assert end[chart.PAYOUTS_IN_TRANSIT] == 14 * 700


def test_a_hot_account_takes_many_concurrent_postings_without_losing_one(merchant_id):
    def capture(worker: int):
        def run():
            for n in range(30):
                ledger_post(
                    merchant_id=merchant_id,
                    livemode=False,
                    currency="eur",
                    kind="capture",
                    idempotency_key=f"hot:{worker}:{n}",
                    legs=[
                        Leg.debit(chart.psp_receivable("c"), 10),
                        Leg.credit(chart.MERCHANT_PENDING, 10),
                    ],
                )

        return run

    outcomes = run_concurrently([capture(w) for w in range(8)])
    assert [error for _, error in outcomes] == [None] * 8
    assert balances(merchant_id)[chart.MERCHANT_PENDING] == 8 * 30 * 10
