"""The checkout plane posts inside its own transaction: the journal commits or rolls back with
it, and a refused posting leaves the caller's transaction usable."""

from __future__ import annotations

import pytest
from django.db import transaction

from apps.core.errors import ConflictError
from apps.ledger import chart, postings
from apps.ledger.services import ledger_capture_hold, ledger_post
from tests.ledger.support import CONNECTOR, LEDGER_DB, balances, hold, row_counts

pytestmark = LEDGER_DB


class _CallerFailed(Exception):
    pass


def test_a_posting_rolls_back_with_the_callers_transaction(merchant_id):
    before = row_counts()
    with pytest.raises(_CallerFailed), transaction.atomic():
        ledger_post(
            merchant_id=merchant_id,
            livemode=False,
            currency="eur",
            kind="refund",
            idempotency_key="re_1",
            legs=postings.refund_legs(connector=CONNECTOR, amount=100),
        )
        raise _CallerFailed  # e.g. the refund's own state change failed after the posting
    assert row_counts() == before


def test_a_refused_posting_leaves_the_callers_transaction_usable(merchant_id):
    authorization = hold(merchant_id, 1000, key="auth")
    with transaction.atomic():
        ledger_capture_hold(
            hold=authorization,
            amount=1000,
            legs=postings.capture_legs(connector=CONNECTOR, amount=1000),
            idempotency_key="capture",
        )
        with pytest.raises(ConflictError):
            ledger_post(
                merchant_id=merchant_id,
                livemode=False,
                currency="eur",
                kind="payout",
                idempotency_key="po_1",
                legs=postings.payout_legs(amount=1),
            )
        # the caller carries on in the same transaction
        ledger_post(
            merchant_id=merchant_id,
            livemode=False,
            currency="eur",
            kind="funds_release",
            idempotency_key="release",
            legs=postings.funds_release_legs(amount=400),
        )
    assert balances(merchant_id)[chart.MERCHANT_AVAILABLE] == 400
    assert balances(merchant_id)[chart.MERCHANT_PENDING] == 600
