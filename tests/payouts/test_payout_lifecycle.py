"""The payout state machine against the real simulator's payout endpoint: paid at once, delayed
(in transit, resolved by the poll), failing later, rejected; unknown outcomes re-sent with the
same idempotency key; failed payouts reversed back to the balance and retried."""

from __future__ import annotations

import time

import pytest

from apps.core.audit import Actor
from apps.core.errors import ConflictError, InvalidRequestError
from apps.events.models import OutboxEvent
from apps.ledger.models import JournalTransaction
from apps.payouts import services
from apps.payouts.models import Payout
from apps.psp_adapters.contract import PayoutResult, ProviderOutcome
from tests.factories import PayoutFactory
from tests.payouts.conftest import US_BANK, available, fund, in_transit, make_seller

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")


def _create(merchant, amount: int, *, seller=None, currency="eur") -> Payout:
    """A payout of the balance the test funded."""
    return PayoutFactory(
        merchant=merchant, amount=amount, seller=seller, currency=currency, funded=False
    )


def _events(payout: Payout) -> list[str]:
    return list(
        OutboxEvent.objects.filter(object_id=payout.public_id)
        .order_by("sequence")
        .values_list("event_type", flat=True)
    )


def _journal_kinds(payout: Payout) -> list[str]:
    return list(
        JournalTransaction.objects.filter(source_id=payout.public_id)
        .order_by("id")
        .values_list("kind", flat=True)
    )


def _poll_until_resolved(provider, payout: Payout, timeout: float = 5.0) -> Payout:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        services.payouts_poll_in_transit()
        payout = Payout.objects.get(pk=payout.pk)
        if payout.status in ("paid", "failed"):
            return payout
        time.sleep(0.05)
    raise AssertionError(f"{payout.public_id} still {payout.status}")


def test_paid_at_once(merchant, provider, payout_sim):
    fund(merchant, 10_000)
    payout = _create(merchant, 4_000)

    payout = services.payout_submit(payout_id=payout.pk)

    assert payout.status == "paid"
    assert payout.provider_reference.startswith("po_")
    assert payout.arrival_date is not None
    # the money left through the bank: nothing stays in transit
    assert (available(merchant), in_transit(merchant)) == (6_000, 0)
    assert _journal_kinds(payout) == ["payout", "payout_paid"]
    assert _events(payout) == ["payout.created", "payout.updated", "payout.paid"]
    # the provider got exactly one payout, keyed by the payout id
    (sent,) = payout_sim.payouts()
    assert (sent["id"], sent["amount"], sent["currency"]) == (
        payout.provider_reference,
        4_000,
        "eur",
    )
    assert sent["metadata"] == {"payout_id": payout.public_id}


def test_delayed_payout_stays_in_transit_until_the_poll_sees_it_paid(merchant, provider):
    fund(merchant, 20_000)
    payout = _create(merchant, 9_902)  # the simulator's "paid later" amount

    payout = services.payout_submit(payout_id=payout.pk)
    assert payout.status == "in_transit"
    assert in_transit(merchant) == 9_902

    payout = _poll_until_resolved(provider, payout)

    assert payout.status == "paid"
    assert in_transit(merchant) == 0
    assert available(merchant) == 20_000 - 9_902
    assert _events(payout) == ["payout.created", "payout.updated", "payout.paid"]


def test_seller_payout_that_bounces_returns_the_money_to_the_seller(merchant, provider):
    # a seller whose bank account is Stripe's test "no such account" number
    seller = make_seller(merchant, bank={**US_BANK, "account_number": "000111111116"})
    fund(merchant, 5_000, seller=seller, currency="usd")
    payout = _create(merchant, 5_000, seller=seller, currency="usd")

    payout = services.payout_submit(payout_id=payout.pk)
    assert payout.status == "in_transit"
    assert available(merchant, seller=seller, currency="usd") == 0

    payout = _poll_until_resolved(provider, payout)

    assert payout.status == "failed"
    assert payout.failure_code == "no_account"
    assert available(merchant, seller=seller, currency="usd") == 5_000
    assert in_transit(merchant, currency="usd") == 0
    assert _journal_kinds(payout) == ["payout", "payout_failure"]
    failure = JournalTransaction.objects.get(source_id=payout.public_id, kind="payout_failure")
    assert failure.reverses.public_id == payout.ledger_transaction
    assert _events(payout) == ["payout.created", "payout.updated", "payout.failed"]


def test_rejected_by_the_provider_fails_at_once_and_can_be_retried(merchant, provider, payout_sim):
    fund(merchant, 20_000)
    payout = _create(merchant, 9_901)  # the simulator refuses this amount: balance_insufficient
    first_journal = payout.ledger_transaction

    payout = services.payout_submit(payout_id=payout.pk)

    assert payout.status == "failed"
    assert payout.failure_code == "balance_insufficient"
    assert available(merchant) == 20_000

    # when finance retries it: a new round books the money again under a new journal and key
    payout = services.payout_retry(payout=payout, actor=ACTOR)
    assert (payout.status, payout.attempt) == ("pending", 2)
    assert payout.ledger_transaction != first_journal
    assert payout.provider_idempotency_key == f"{payout.public_id}:2"
    assert available(merchant) == 20_000 - 9_901
    # the provider refuses it again (same magic amount): reversed again, once per round
    payout = services.payout_submit(payout_id=payout.pk)
    assert payout.status == "failed"
    assert available(merchant) == 20_000
    assert _journal_kinds(payout) == ["payout", "payout_failure", "payout", "payout_failure"]
    assert payout_sim.payouts() == []  # a refused request created nothing at the provider


def test_retry_refused_when_the_balance_was_spent_meanwhile(merchant, provider):
    fund(merchant, 10_000)
    payout = services.payout_submit(payout_id=_create(merchant, 9_901).pk)
    assert payout.status == "failed"
    _create(merchant, 5_000)  # spends half of the returned money

    with pytest.raises(InvalidRequestError) as refused:
        services.payout_retry(payout=payout, actor=ACTOR)

    assert refused.value.code == "insufficient_balance"
    payout = Payout.objects.get(pk=payout.pk)
    assert (payout.status, payout.attempt) == ("failed", 1)
    assert available(merchant) == 5_000


def test_unknown_outcome_is_resent_with_the_same_key_and_pays_once(merchant, provider, payout_sim):
    fund(merchant, 10_000)
    payout = _create(merchant, 3_000)
    # the provider processes the payout, then answers 500 (and replays the real result)
    payout_sim.faults(processed_then_500_rate=1, operations=["payout"], limit=1)

    payout = services.payout_submit(payout_id=payout.pk)

    assert (payout.status, payout.awaiting_provider) == ("pending", True)
    with pytest.raises(ConflictError) as refused:
        services.payout_cancel(payout=payout, actor=ACTOR)  # it may be at the bank already
    assert refused.value.code == "payout_not_cancelable"

    resent = services.payouts_resubmit_pending(older_than_seconds=0)

    assert resent == 1
    payout = Payout.objects.get(pk=payout.pk)
    assert payout.status == "paid"
    assert payout.submit_count == 2
    assert len(payout_sim.payouts()) == 1  # exactly one payout at the provider
    assert (available(merchant), in_transit(merchant)) == (7_000, 0)


def test_provider_down_leaves_the_payout_pending_and_cancelable(merchant, provider, payout_sim):
    fund(merchant, 10_000)
    payout = _create(merchant, 3_000)
    payout_sim.faults(error_503_rate=1, operations=["payout"])  # not processed

    payout = services.payout_submit(payout_id=payout.pk)

    assert (payout.status, payout.awaiting_provider) == ("pending", False)
    assert "retryable" in payout.last_submit_error
    payout = services.payout_cancel(payout=payout, actor=ACTOR)
    assert payout.status == "canceled"
    assert available(merchant) == 10_000
    assert payout_sim.payouts() == []


def test_late_answer_for_an_earlier_round_is_ignored(merchant, provider):
    fund(merchant, 10_000)
    payout = _create(merchant, 1_000)
    payout = services.payout_fail(payout=payout, failure_code="could_not_process", actor=ACTOR)
    payout = services.payout_retry(payout=payout, actor=ACTOR)

    stale = PayoutResult(ProviderOutcome.PAID, reference="po_old")
    payout = services.payout_apply_provider_result(payout_id=payout.pk, attempt=1, result=stale)

    assert (payout.status, payout.provider_reference) == ("pending", "")
    assert available(merchant) == 9_000


def test_terminal_payouts_refuse_further_transitions(merchant, provider):
    fund(merchant, 10_000)
    paid = services.payout_submit(payout_id=_create(merchant, 1_000).pk)
    assert paid.status == "paid"

    for operation, code in [
        (lambda: services.payout_cancel(payout=paid, actor=ACTOR), "payout_not_cancelable"),
        (lambda: services.payout_retry(payout=paid, actor=ACTOR), "payout_not_failed"),
        (
            lambda: services.payout_fail(payout=paid, failure_code="x", actor=ACTOR),
            "payout_unexpected_state",
        ),
    ]:
        with pytest.raises(ConflictError) as refused:
            operation()
        assert refused.value.code == code
    # marking a paid payout paid again is a no-op, not a second bank debit
    assert services.payout_mark_paid(payout=paid, actor=ACTOR).status == "paid"
    assert _journal_kinds(paid) == ["payout", "payout_paid"]
