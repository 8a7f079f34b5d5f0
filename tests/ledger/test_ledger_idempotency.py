"""An idempotency key makes exactly one journal, however often and however concurrently sent."""

from __future__ import annotations

import pytest

from apps.core.errors import IdempotencyError
from apps.ledger import chart
from apps.ledger.chart import Leg
from apps.ledger.models import JournalTransaction, LedgerEntry
from apps.ledger.services import ledger_post
from tests.ledger.support import LEDGER_DB, RECEIVABLE, balances, row_counts, run_concurrently

pytestmark = LEDGER_DB


def _capture(merchant_id: int, key: str, amount: int):
    return ledger_post(
        merchant_id=merchant_id,
        livemode=False,
        currency="eur",
        kind="capture",
        idempotency_key=key,
        legs=[Leg.debit(RECEIVABLE, amount), Leg.credit(chart.MERCHANT_PENDING, amount)],
        metadata={"payment_intent": "pi_123"},
        source_type="payment_intent",
        source_id="pi_123",
    )


def test_one_key_sent_twenty_times_concurrently_makes_exactly_one_journal(merchant_id):
    # when 20 threads post the same request with the same key at the same moment
    outcomes = run_concurrently([lambda: _capture(merchant_id, "pi_123:capture", 1000)] * 20)

    # then all of them succeed with the same journal, and the money moved once
    assert [error for _, error in outcomes] == [None] * 20
    assert len({journal.public_id for journal, _ in outcomes}) == 1
    assert JournalTransaction.objects.filter(idempotency_key="pi_123:capture").count() == 1
    assert LedgerEntry.objects.count() == 2
    assert balances(merchant_id) == {RECEIVABLE: 1000, chart.MERCHANT_PENDING: 1000}


def test_a_replay_returns_the_original_and_another_payload_is_refused(merchant_id):
    # given a posted journal
    original = _capture(merchant_id, "pi_123:capture", 1000)
    before = row_counts()

    # when the same request is replayed, it returns the original
    assert _capture(merchant_id, "pi_123:capture", 1000).pk == original.pk

    # when the key comes back with another amount, it is refused and nothing is written
    with pytest.raises(IdempotencyError) as refused:
        _capture(merchant_id, "pi_123:capture", 2000)
    assert refused.value.code == "idempotency_key_reused"
    assert row_counts() == before
    assert balances(merchant_id)[chart.MERCHANT_PENDING] == 1000


def test_concurrent_twins_with_different_payloads_make_one_journal(merchant_id):
    # when ten threads send 1000 and ten send 2000 under one key
    calls = [lambda: _capture(merchant_id, "k", 1000), lambda: _capture(merchant_id, "k", 2000)]
    outcomes = run_concurrently(calls * 10)

    # then one payload won; its senders got the journal, the others the idempotency error
    winners = {journal.pk for journal, _ in outcomes if journal is not None}
    errors = [error for _, error in outcomes if error is not None]
    assert len(winners) == 1
    assert len(errors) == 10
    assert all(getattr(e, "code", None) == "idempotency_key_reused" for e in errors)
    assert JournalTransaction.objects.count() == 1
