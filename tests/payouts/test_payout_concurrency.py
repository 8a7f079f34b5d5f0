"""Many concurrent payouts against one balance: PostgreSQL refuses the overdraft, so exactly
floor(balance / amount) succeed and the rest are refused cleanly, leaving nothing behind."""

from __future__ import annotations

import pytest

from apps.core.audit import Actor
from apps.core.errors import InvalidRequestError
from apps.events.models import OutboxEvent
from apps.ledger.models import JournalTransaction
from apps.payouts.models import Payout
from apps.payouts.services import payout_create
from tests.ledger.support import run_concurrently
from tests.payouts.conftest import available, fund, in_transit, make_seller

# transactional (real commits, real row locks) and flushing only the tables these tests use
pytestmark = pytest.mark.django_db(
    transaction=True,
    available_apps=["apps.core", "apps.merchants", "apps.ledger", "apps.events", "apps.payouts"],
)

ACTOR = Actor.system("tests")


def _race(merchant, *, balance: int, amount: int, workers: int, seller=None):
    def attempt():
        return payout_create(
            merchant=merchant,
            livemode=False,
            amount=amount,
            currency="eur",
            seller=seller.public_id if seller else None,
            actor=ACTOR,
        )

    return run_concurrently([attempt for _ in range(workers)])


def test_concurrent_merchant_payouts_never_overdraw(merchant):
    # given 10_000 available
    fund(merchant, 10_000)

    # when 20 payouts of 700 race for it
    outcomes = _race(merchant, balance=10_000, amount=700, workers=20)

    # then exactly floor(10_000 / 700) = 14 succeed, the others are refused cleanly
    succeeded = [payout for payout, _ in outcomes if payout is not None]
    refused = [error for _, error in outcomes if error is not None]
    assert len(succeeded) == 10_000 // 700
    assert len(refused) == 20 - 14
    assert all(
        isinstance(e, InvalidRequestError) and e.code == "insufficient_balance" for e in refused
    ), refused
    # and the refused ones left nothing behind
    assert Payout.objects.count() == 14
    assert JournalTransaction.objects.filter(kind="payout").count() == 14
    assert OutboxEvent.objects.filter(event_type="payout.created").count() == 14
    assert available(merchant) == 10_000 - 14 * 700
    assert in_transit(merchant) == 14 * 700


def test_concurrent_seller_payouts_never_overdraw(merchant):
    seller = make_seller(merchant)
    fund(merchant, 3_000, seller=seller)
    fund(merchant, 50_000)  # the merchant's own money must not cover the seller's payouts

    outcomes = _race(merchant, balance=3_000, amount=1_000, workers=8, seller=seller)

    assert sum(payout is not None for payout, _ in outcomes) == 3
    assert available(merchant, seller=seller) == 0
    assert available(merchant) == 50_000
