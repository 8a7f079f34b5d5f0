"""Random sequences of submit / provider answers / poll / cancel / fail / retry / other
spending on one payout, against a stub provider, compared after every step with an in-memory
model of its status and of the ledger balances (available, in transit)."""

from __future__ import annotations

import itertools
from unittest import mock

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from apps.connectors import gateway
from apps.core.audit import Actor
from apps.core.errors import PlatformError
from apps.ledger import chart
from apps.payouts import services
from apps.payouts.models import Payout
from apps.psp_adapters.contract import PayoutResult, ProviderOutcome
from tests.factories import MerchantFactory
from tests.ledger.support import assert_zero_sums, balances
from tests.payouts.conftest import fund

ACTOR = Actor.system("state-machine")
Out = ProviderOutcome
AMOUNT = 1_000
_refs = itertools.count(1)


class StubProvider:
    """Answers with whatever the rule chose; never touches the network."""

    def __init__(self) -> None:
        self.answer = Out.PAID

    def create_payout(self, request) -> PayoutResult:
        definite = self.answer in (Out.PAID, Out.PENDING, Out.FAILED)
        return PayoutResult(self.answer, reference=f"po_stub_{next(_refs)}" if definite else "")


class PayoutMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.merchant = MerchantFactory(name="SM shop", actor=ACTOR)
        fund(self.merchant, 3_000)
        self.provider = StubProvider()
        self.payout = services.payout_create(
            merchant=self.merchant, livemode=False, amount=AMOUNT, currency="eur", actor=ACTOR
        )
        # the model
        self.status = "pending"
        self.attempt = 1
        self.awaiting = False
        self.reference = ""
        self.available = 3_000 - AMOUNT
        self.in_transit = AMOUNT  # other payouts' money stays in transit too

    # -- helpers

    def expect(self, code: str | None, call) -> None:
        try:
            call()
        except PlatformError as exc:
            assert exc.code == code, (exc.code, code)
        else:
            assert code is None, f"expected {code}"

    def booked_back(self) -> None:
        self.available += AMOUNT
        self.in_transit -= AMOUNT

    def apply(self, outcome: Out, *, reference: str) -> None:
        """The model of payout_apply_provider_result for the current round."""
        if self.status not in ("pending", "in_transit"):
            return
        if reference and not self.reference:
            self.reference = reference
        if outcome in (Out.RETRYABLE, Out.UNKNOWN):
            if self.status == "pending":
                self.awaiting = outcome == Out.UNKNOWN
            return
        self.awaiting = False
        if outcome in (Out.FAILED, Out.REJECTED):
            self.status = "failed"
            self.booked_back()
        elif outcome == Out.PAID:
            self.status = "paid"
            self.in_transit -= AMOUNT
        else:
            self.status = "in_transit"

    # -- rules

    @rule(outcome=st.sampled_from(list(Out)))
    def submit(self, outcome):
        self.provider.answer = outcome
        before = self.status
        # the gateway's payout call answers what the rule chose (a stub PSP, not our code)
        with mock.patch.object(
            gateway, "payout_create", lambda request: self.provider.create_payout(request)
        ):
            payout = services.payout_submit(payout_id=self.payout.pk)
        if before == "pending":
            self.apply(outcome, reference=payout.provider_reference)
            if outcome in (Out.RETRYABLE, Out.UNKNOWN):
                self.awaiting = outcome == Out.UNKNOWN

    @rule(outcome=st.sampled_from([Out.PAID, Out.FAILED, Out.PENDING, Out.UNKNOWN]))
    def provider_answers_for_this_round(self, outcome):
        reference = f"po_poll_{next(_refs)}"
        services.payout_apply_provider_result(
            payout_id=self.payout.pk,
            attempt=self.attempt,
            result=PayoutResult(outcome, reference=reference),
        )
        self.apply(outcome, reference=reference)

    @rule(outcome=st.sampled_from([Out.PAID, Out.FAILED]))
    def late_answer_for_an_earlier_round(self, outcome):
        services.payout_apply_provider_result(
            payout_id=self.payout.pk,
            attempt=self.attempt - 1,
            result=PayoutResult(outcome, reference="po_stale"),
        )

    @rule()
    def cancel(self):
        payout = Payout.objects.get(pk=self.payout.pk)
        if self.status == "canceled":
            code = None
        elif self.status != "pending" or self.awaiting or self.reference:
            code = "payout_not_cancelable"
        else:
            code = None
            self.status = "canceled"
            self.booked_back()
        self.expect(code, lambda: services.payout_cancel(payout=payout, actor=ACTOR))

    @rule()
    def bank_bounces_it(self):
        payout = Payout.objects.get(pk=self.payout.pk)
        code = None
        if self.status in ("pending", "in_transit"):
            self.status = "failed"
            self.awaiting = False
            self.booked_back()
        elif self.status != "failed":
            code = "payout_unexpected_state"
        self.expect(
            code,
            lambda: services.payout_fail(payout=payout, failure_code="account_closed", actor=ACTOR),
        )

    @rule()
    def retry(self):
        payout = Payout.objects.get(pk=self.payout.pk)
        if self.status != "failed":
            code = "payout_not_failed"
        elif self.available < AMOUNT:
            code = "insufficient_balance"
        else:
            code = None
            self.status, self.attempt, self.awaiting, self.reference = (
                "pending",
                self.attempt + 1,
                False,
                "",
            )
            self.available -= AMOUNT
            self.in_transit += AMOUNT
        self.expect(code, lambda: services.payout_retry(payout=payout, actor=ACTOR))

    @rule(amount=st.integers(min_value=1, max_value=2_500))
    def merchant_pays_out_something_else(self, amount):
        call = lambda: services.payout_create(  # noqa: E731
            merchant=self.merchant, livemode=False, amount=amount, currency="eur", actor=ACTOR
        )
        if amount > self.available:
            self.expect("insufficient_balance", call)
        else:
            call()
            self.available -= amount
            self.in_transit += amount

    # -- after every step

    @invariant()
    def database_matches_the_model(self):
        payout = Payout.objects.get(pk=self.payout.pk)
        assert payout.status == self.status
        assert payout.attempt == self.attempt
        assert payout.awaiting_provider == self.awaiting
        assert payout.provider_reference == self.reference
        ledger = balances(self.merchant.pk)
        assert ledger.get(chart.MERCHANT_AVAILABLE, 0) == self.available
        assert ledger.get(chart.PAYOUTS_IN_TRANSIT, 0) == self.in_transit

    def teardown(self):
        assert_zero_sums()


@pytest.mark.django_db
def test_random_payout_operations_match_an_in_memory_model():
    run = PayoutMachine.TestCase
    run.settings = settings(
        max_examples=15,
        stateful_step_count=12,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    run().runTest()
