"""Settlement delay releases, and the finance reads: balances, balance transactions, trial
balance, drill-down by source object."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from django.utils import timezone

from apps.ledger import chart, postings, selectors
from apps.ledger.models import JournalTransaction
from apps.ledger.services import ledger_capture_hold, ledger_post, ledger_release_settled
from apps.ledger.tasks import release_settled
from tests.ledger.support import CONNECTOR, LEDGER_DB, balances, hold

pytestmark = LEDGER_DB


def _capture(merchant_id: int, key: str, amount: int, connector: str = CONNECTOR, **kwargs):
    authorization = hold(merchant_id, amount, key=f"{key}:auth", source_id=f"pi_{key}")
    return ledger_capture_hold(
        hold=authorization,
        amount=amount,
        legs=postings.capture_legs(connector=connector, amount=amount, **kwargs),
        idempotency_key=f"{key}:capture",
        source_type="payment_intent",
        source_id=f"pi_{key}",
    )


def test_captures_become_available_after_their_connectors_delay(merchant_id):
    # given a fast connector (1 day) and a slow one (default, 3 days)
    _capture(merchant_id, "fast", 1000, connector="fast", psp_fee=30)
    _capture(merchant_id, "slow", 2000, connector="slow", splits=[postings.Split("s_1", 500)])
    delays = {"fast": 86_400}

    # when the release job runs after 2 days, only the fast capture is released
    with time_machine.travel(timezone.now() + timedelta(days=2)):
        assert (
            ledger_release_settled(delays_by_connector=delays, default_delay_seconds=259_200) == 1
        )
    assert balances(merchant_id)[chart.MERCHANT_AVAILABLE] == 970

    # and after 4 days the slow one, seller share included; a rerun releases nothing twice
    with time_machine.travel(timezone.now() + timedelta(days=4)):
        assert release_settled(delays, 259_200) == 1
        assert release_settled(delays, 259_200) == 0
    result = balances(merchant_id)
    assert result[chart.MERCHANT_AVAILABLE] == 970 + 1500
    assert result[chart.seller_available("s_1")] == 500
    assert result[chart.MERCHANT_PENDING] == 0


def test_a_connector_settled_by_reports_still_releases_sellers_on_its_delay(merchant_id):
    """Its settlement report releases the merchant's own pending funds (issue 14); the sellers'
    shares of its captures still become available after the connector's delay."""
    _capture(merchant_id, "split", 2000, connector="reported", splits=[postings.Split("s_2", 700)])
    _capture(merchant_id, "plain", 1000, connector="reported")

    with time_machine.travel(timezone.now() + timedelta(days=4)):
        released = ledger_release_settled(
            delays_by_connector={"reported": 86_400},
            default_delay_seconds=259_200,
            skip_connectors=frozenset({"reported"}),
        )
        assert released == 1  # the split capture; the plain one waits for its report
        assert (
            ledger_release_settled(
                delays_by_connector={"reported": 86_400},
                default_delay_seconds=259_200,
                skip_connectors=frozenset({"reported"}),
            )
            == 0
        )
    result = balances(merchant_id)
    assert result[chart.seller_available("s_2")] == 700
    assert result.get(chart.MERCHANT_AVAILABLE, 0) == 0
    assert result[chart.MERCHANT_PENDING] == 1300 + 1000


def test_a_refund_before_release_reduces_what_becomes_available(merchant_id):
    _capture(merchant_id, "a", 1000)
    ledger_post(
        merchant_id=merchant_id,
        livemode=False,
        currency="eur",
        kind="refund",
        idempotency_key="refund",
        legs=postings.refund_legs(connector=CONNECTOR, amount=400),
    )
    with time_machine.travel(timezone.now() + timedelta(days=10)):
        ledger_release_settled(delays_by_connector={}, default_delay_seconds=0)
    assert balances(merchant_id)[chart.MERCHANT_AVAILABLE] == 600
    assert balances(merchant_id)[chart.MERCHANT_PENDING] == 0


def test_balances_and_balance_transactions_show_amount_fee_and_net(merchant_id):
    _capture(merchant_id, "a", 10_000, psp_fee=290, platform_fee=100)
    ledger_post(
        merchant_id=merchant_id,
        livemode=False,
        currency="eur",
        kind="refund",
        idempotency_key="re_1",
        legs=postings.refund_legs(connector=CONNECTOR, amount=2500),
        source_type="refund",
        source_id="re_1",
    )
    assert selectors.balances_for_merchant(merchant_id=merchant_id, livemode=False) == [
        selectors.Balance("eur", available=0, pending=10_000 - 390 - 2500)
    ]
    rows = [
        (t.kind, t.amount, t.fee, t.net, t.source_id)
        for t in selectors.balance_transactions(merchant_id=merchant_id, livemode=False)
    ]
    assert rows == [
        ("refund", -2500, 0, -2500, "re_1"),
        ("capture", 10_000, 390, 9610, "pi_a"),
    ]
    refunds = selectors.balance_transactions(merchant_id=merchant_id, livemode=False, kind="refund")
    assert [t.source_id for t in refunds] == ["re_1"]
    # another merchant sees none of it
    assert not selectors.balance_transactions(merchant_id=merchant_id + 1, livemode=False)


def test_trial_balance_and_drill_down(merchant_id):
    _capture(merchant_id, "a", 5000, psp_fee=100)
    (eur,) = selectors.trial_balance(livemode=False)
    assert eur.balanced
    assert eur.total_debit == eur.total_credit == 5000
    lines = {line.code_family: (line.debit, line.credit) for line in eur.lines}
    assert lines["psp_receivable"] == (4900, 0)
    assert lines["merchant_pending"] == (0, 4900)

    journals = selectors.journals_for_source(source_id="pi_a", merchant_id=merchant_id)
    assert [j.kind for j in journals] == ["authorization_hold", "capture"]
    capture = journals[1]
    assert {e.account.code for e in capture.entries.all()} >= {chart.MERCHANT_PENDING}
    assert JournalTransaction.objects.filter(source_id="pi_a").count() == 2
