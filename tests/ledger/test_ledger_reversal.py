"""A reversal is the exact negation of its original, posted once."""

from __future__ import annotations

import pytest

from apps.core.errors import ConflictError
from apps.ledger import chart, postings
from apps.ledger.models import LedgerEntry
from apps.ledger.services import ledger_post, ledger_reverse
from tests.ledger.support import (
    CONNECTOR,
    LEDGER_DB,
    balances,
    fund_available,
    hold,
    run_concurrently,
)

pytestmark = LEDGER_DB


def test_a_reversal_exactly_negates_its_original(merchant_id):
    # given a capture with a fee and a seller split
    original = ledger_post(
        merchant_id=merchant_id,
        livemode=False,
        currency="eur",
        kind="capture",
        idempotency_key="capture",
        legs=postings.capture_legs(
            connector=CONNECTOR,
            amount=10_000,
            psp_fee=290,
            platform_fee=500,
            splits=[postings.Split("s_1", 6000)],
        ),
        source_type="payment_intent",
        source_id="pi_1",
    )
    before = {code: 0 for code in balances(merchant_id)}

    # when it is reversed
    reversal = ledger_reverse(transaction=original, idempotency_key="rev", reason="duplicate")

    # then every entry is mirrored and every balance is back where it was
    def lines(journal):
        return sorted(
            LedgerEntry.objects.filter(transaction=journal).values_list("account_id", "amount")
        )

    assert lines(reversal) == sorted((a, -amount) for a, amount in lines(original))
    assert balances(merchant_id) == before
    assert reversal.reverses_id == original.pk
    assert reversal.source_id == "pi_1"  # drill-down finds both


def test_a_transaction_is_reversed_only_once(merchant_id):
    fund_available(merchant_id, 5000, key="fund")
    payout = ledger_post(
        merchant_id=merchant_id,
        livemode=False,
        currency="eur",
        kind="payout",
        idempotency_key="po_1",
        legs=postings.payout_legs(amount=3000),
    )

    # when four failure notices race with different keys
    outcomes = run_concurrently(
        [
            lambda n=n: ledger_reverse(
                transaction=payout,
                idempotency_key=f"po_1:failed:{n}",
                reason="bank rejected",
                kind="payout_failure",
            )
            for n in range(4)
        ]
    )

    # then one reversal exists and the others were refused
    winners = [journal for journal, _ in outcomes if journal is not None]
    assert len(winners) == 1
    codes = {error.code for _, error in outcomes if error is not None}
    assert codes == {"transaction_already_reversed"}
    assert balances(merchant_id)[chart.MERCHANT_AVAILABLE] == 5000
    # a replay of the winner's key returns it
    again = ledger_reverse(
        transaction=payout,
        idempotency_key=winners[0].idempotency_key,
        reason="bank rejected",
        kind="payout_failure",
    )
    assert again.pk == winners[0].pk


def test_reversals_and_holds_cannot_be_reversed(merchant_id):
    original = ledger_post(
        merchant_id=merchant_id,
        livemode=False,
        currency="eur",
        kind="refund",
        idempotency_key="re_1",
        legs=postings.refund_legs(connector=CONNECTOR, amount=100),
    )
    reversal = ledger_reverse(transaction=original, idempotency_key="rev", reason="oops")
    with pytest.raises(ConflictError) as twice:
        ledger_reverse(transaction=reversal, idempotency_key="rev-rev", reason="oops")
    assert twice.value.code == "reversal_not_allowed"
    authorization = hold(merchant_id, 100, key="auth")
    with pytest.raises(ConflictError) as held:
        ledger_reverse(transaction=authorization, idempotency_key="rev-hold", reason="x")
    assert held.value.code == "reversal_not_allowed"


def test_a_reversal_that_would_overdraw_is_refused(merchant_id):
    # given a release whose funds were paid out
    fund_available(merchant_id, 1000, key="fund")
    ledger_post(
        merchant_id=merchant_id,
        livemode=False,
        currency="eur",
        kind="payout",
        idempotency_key="po",
        legs=postings.payout_legs(amount=1000),
    )
    release = ledger_post(
        merchant_id=merchant_id,
        livemode=False,
        currency="eur",
        kind="funds_release",
        idempotency_key="release-2",
        legs=postings.funds_release_legs(amount=10),
    )
    ledger_post(
        merchant_id=merchant_id,
        livemode=False,
        currency="eur",
        kind="payout",
        idempotency_key="po-2",
        legs=postings.payout_legs(amount=10),
    )
    # then taking the release back would make the available balance negative
    with pytest.raises(ConflictError) as refused:
        ledger_reverse(transaction=release, idempotency_key="rev", reason="x")
    assert refused.value.code == "insufficient_balance"
