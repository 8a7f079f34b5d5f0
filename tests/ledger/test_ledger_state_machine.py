"""Random sequences of authorize / capture / void / refund / release / payout / reversal,
checked against an in-memory model of every account after every step."""

from __future__ import annotations

import itertools
from collections import defaultdict

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from apps.core.errors import PlatformError
from apps.ledger import chart, postings
from apps.ledger.models import LedgerAccount
from apps.ledger.services import (
    ledger_capture_hold,
    ledger_post,
    ledger_reverse,
    ledger_void_hold,
)
from tests.ledger.support import CONNECTOR, LEDGER_DB, RECEIVABLE, assert_zero_sums, hold

_merchants = itertools.count(500_001)
HOLDS, AUTHS = chart.AUTHORIZED_HOLDS, chart.AUTHORIZATIONS
PENDING, AVAILABLE, IN_TRANSIT = (
    chart.MERCHANT_PENDING,
    chart.MERCHANT_AVAILABLE,
    chart.PAYOUTS_IN_TRANSIT,
)
NON_NEGATIVE = (AVAILABLE, IN_TRANSIT)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.merchant_id = next(_merchants)  # a fresh merchant per example: no cleanup needed
        self.keys = itertools.count()
        # the model, in normal-balance terms like the accounts
        self.posted: dict[str, int] = defaultdict(int)
        self.pending_debits: dict[str, int] = defaultdict(int)
        self.pending_credits: dict[str, int] = defaultdict(int)
        self.holds: list[dict] = []  # {"journal", "amount", "resolved"}
        self.reversible: list[dict] = []  # {"journal", "effects", "reversed"}
        self.last_post: tuple | None = None

    # -- helpers

    def key(self, label: str) -> str:
        return f"{self.merchant_id}:{label}:{next(self.keys)}"

    def expect_error(self, code: str, call) -> None:
        try:
            call()
        except PlatformError as exc:
            assert exc.code == code, (exc.code, code)
        else:
            raise AssertionError(f"expected {code}")

    def post(self, kind: str, legs, effects: dict[str, int]):
        key = self.key(kind)
        journal = ledger_post(
            merchant_id=self.merchant_id,
            livemode=False,
            currency="eur",
            kind=kind,
            idempotency_key=key,
            legs=legs,
        )
        for code, delta in effects.items():
            self.posted[code] += delta
        self.reversible.append({"journal": journal, "effects": effects, "reversed": False})
        self.last_post = (kind, key, legs, journal.pk)
        return journal

    def release_hold(self, entry: dict) -> None:
        entry["resolved"] = True
        self.pending_debits[HOLDS] -= entry["amount"]
        self.pending_credits[AUTHS] -= entry["amount"]

    # -- rules

    @rule(amount=st.integers(1, 10_000))
    def authorize(self, amount):
        journal = hold(self.merchant_id, amount, key=self.key("auth"))
        self.pending_debits[HOLDS] += amount
        self.pending_credits[AUTHS] += amount
        self.holds.append({"journal": journal, "amount": amount, "resolved": False})

    @precondition(lambda self: self.holds)
    @rule(pick=st.integers(0, 10**6), amount=st.integers(1, 12_000), fee=st.integers(0, 300))
    def capture(self, pick, amount, fee):
        entry = self.holds[pick % len(self.holds)]
        fee = min(fee, amount)

        def call():
            return ledger_capture_hold(
                hold=entry["journal"],
                amount=amount,
                legs=postings.capture_legs(connector=CONNECTOR, amount=amount, psp_fee=fee),
                idempotency_key=self.key("capture"),
            )

        if amount > entry["amount"]:
            self.expect_error("capture_exceeds_hold", call)
        elif entry["resolved"]:
            self.expect_error("hold_already_resolved", call)
        else:
            call()
            self.release_hold(entry)
            self.posted[RECEIVABLE] += amount - fee
            self.posted[chart.PSP_FEES] += fee
            self.posted[chart.PLATFORM_FEE_REVENUE] += fee
            self.posted[PENDING] += amount - fee

    @precondition(lambda self: self.holds)
    @rule(pick=st.integers(0, 10**6))
    def void(self, pick):
        entry = self.holds[pick % len(self.holds)]

        def call():
            return ledger_void_hold(hold=entry["journal"], idempotency_key=self.key("void"))

        if entry["resolved"]:
            self.expect_error("hold_already_resolved", call)
        else:
            call()
            self.release_hold(entry)

    @rule(amount=st.integers(1, 5_000))
    def refund(self, amount):
        self.post(
            "refund",
            postings.refund_legs(connector=CONNECTOR, amount=amount),
            {PENDING: -amount, RECEIVABLE: -amount},
        )

    @rule(amount=st.integers(1, 5_000))
    def release(self, amount):
        self.post(
            "funds_release",
            postings.funds_release_legs(amount=amount),
            {PENDING: -amount, AVAILABLE: amount},
        )

    @rule(amount=st.integers(1, 5_000))
    def payout(self, amount):
        legs = postings.payout_legs(amount=amount)
        if self.posted[AVAILABLE] < amount:
            self.expect_error(
                "insufficient_balance",
                lambda: ledger_post(
                    merchant_id=self.merchant_id,
                    livemode=False,
                    currency="eur",
                    kind="payout",
                    idempotency_key=self.key("payout"),
                    legs=legs,
                ),
            )
        else:
            self.post("payout", legs, {AVAILABLE: -amount, IN_TRANSIT: amount})

    @precondition(lambda self: self.reversible)
    @rule(pick=st.integers(0, 10**6))
    def reverse(self, pick):
        entry = self.reversible[pick % len(self.reversible)]
        journal = entry["journal"]
        kind = "payout_failure" if journal.kind == "payout" else "reversal"

        def call():
            return ledger_reverse(
                transaction=journal, idempotency_key=self.key("reverse"), reason="test", kind=kind
            )

        after = {code: self.posted[code] - delta for code, delta in entry["effects"].items()}
        if entry["reversed"]:
            self.expect_error("transaction_already_reversed", call)
        elif any(after.get(code, 0) < 0 for code in NON_NEGATIVE):
            self.expect_error("insufficient_balance", call)
        else:
            call()
            entry["reversed"] = True
            self.posted.update(after)

    @precondition(lambda self: self.last_post is not None)
    @rule()
    def replay_last_post(self):
        kind, key, legs, pk = self.last_post
        again = ledger_post(
            merchant_id=self.merchant_id,
            livemode=False,
            currency="eur",
            kind=kind,
            idempotency_key=key,
            legs=legs,
        )
        assert again.pk == pk  # and the model does not move

    # -- the check after every step

    @invariant()
    def database_matches_model(self):
        accounts = {a.code: a for a in LedgerAccount.objects.filter(merchant_id=self.merchant_id)}
        codes = set(accounts) | set(self.posted) | set(self.pending_debits)
        for code in codes | set(self.pending_credits):
            account = accounts.get(code)
            actual = (
                (account.posted_balance, account.pending_debits, account.pending_credits)
                if account
                else (0, 0, 0)
            )
            expected = (self.posted[code], self.pending_debits[code], self.pending_credits[code])
            assert actual == expected, code
        for code in NON_NEGATIVE:
            assert self.posted[code] >= 0
        assert_zero_sums()


@LEDGER_DB
def test_random_ledger_operations_match_an_in_memory_model():
    run = LedgerMachine.TestCase
    run.settings = settings(
        max_examples=25,
        stateful_step_count=20,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    run().runTest()
