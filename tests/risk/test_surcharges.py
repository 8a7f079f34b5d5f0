"""Surcharges: computed at confirm from the merchant's rules, shown as amount_details.surcharge,
charged as part of the amount, posted as the merchant's surcharge revenue and returned in
proportion by refunds, with the books balanced; never on EEA/UK consumer cards; bad rules
refused with their code and param."""

from __future__ import annotations

import pytest

from apps.core.errors import InvalidRequestError
from apps.ledger import selectors as ledger_selectors
from apps.ledger.chart import MERCHANT_PENDING, MERCHANT_SURCHARGE, psp_receivable
from apps.risk import services
from apps.risk.models import SurchargeRule

DE_CARD = "4000002760000016"


def _balance(merchant, code):
    return ledger_selectors.account_balance(
        merchant_id=merchant.id, livemode=False, currency="eur", code=code
    )


def _assert_books_balance():
    for trial in ledger_selectors.trial_balance():
        assert trial.total_debit == trial.total_credit
        assert trial.pending_debits == trial.pending_credits


@pytest.fixture
def surcharge_rule(merchant, system_actor):
    return services.surcharge_rule_create(
        merchant_id=merchant.id,
        livemode=False,
        actor=system_actor,
        currency="eur",
        card_funding="credit",
        percent_bps=200,
        fixed=30,
        cap=300,
    )


def test_a_surcharged_payment_refunded_in_part_returns_the_surcharge_in_proportion(
    api, pay, sim, merchant, surcharge_rule, stripe_connector
):
    body = pay(amount=10000).json()  # US Visa credit card: 2 % + 0.30 = 2.30 EUR
    assert (body["status"], body["amount"], body["amount_details"]) == (
        "succeeded",
        10230,
        {"surcharge": 230},
    )
    assert sim.charges(stripe_connector.simulator_account)[0]["amount"] == 10230
    assert _balance(merchant, MERCHANT_SURCHARGE) == 230
    _assert_books_balance()

    refund = api.post(
        "/v1/refunds", {"payment_intent": body["id"], "amount": 5115}, format="json"
    ).json()
    assert refund["status"] in ("pending", "succeeded")
    assert _balance(merchant, MERCHANT_SURCHARGE) == 230 - 115  # half of it back
    _assert_books_balance()
    api.post("/v1/refunds", {"payment_intent": body["id"]}, format="json")
    assert _balance(merchant, MERCHANT_SURCHARGE) == 0  # all of it, exactly
    # everything went back to the shopper: what the PSP is owed (its fee, which it keeps) is
    # what the merchant owes, nothing is left in surcharge revenue
    assert _balance(merchant, psp_receivable(stripe_connector.public_id)) == _balance(
        merchant, MERCHANT_PENDING
    )
    _assert_books_balance()


def test_the_cap_holds_and_eea_cards_are_never_surcharged(
    pay, merchant, surcharge_rule, stripe_connector
):
    big = pay(amount=100000).json()
    assert big["amount_details"]["surcharge"] == 300  # capped
    eea = pay(number=DE_CARD, amount=10000).json()
    assert (eea["amount"], eea["amount_details"]["surcharge"]) == (10000, 0)
    usd = pay(amount=10000, currency="usd").json()  # the rule covers EUR only
    assert usd["amount_details"]["surcharge"] == 0


def test_a_reconfirm_does_not_surcharge_twice(
    api, tokenize, merchant, surcharge_rule, stripe_connector
):
    created = api.post(
        "/v1/payment_intents",
        {
            "amount": 10000,
            "currency": "eur",
            "payment_method": tokenize("4000000000000002"),
            "confirm": True,
        },
        format="json",
    ).json()["error"]["payment_intent"]
    assert created["amount"] == 10230
    again = api.post(
        f"/v1/payment_intents/{created['id']}/confirm",
        {"payment_method": tokenize()},
        format="json",
    ).json()
    assert (again["status"], again["amount"]) == ("succeeded", 10230)


@pytest.mark.parametrize(
    ("fields", "code", "param"),
    [
        ({"fixed": 500, "cap": 300}, "surcharge_above_cap", "fixed"),
        ({"percent_bps": 20000}, "surcharge_percent_invalid", "percent_bps"),
        ({"fixed": 100, "card_country": "FR"}, "surcharge_forbidden", "card_country"),
        ({"fixed": 100, "currency": "zzz"}, None, "currency"),
        ({}, "surcharge_amount_invalid", "percent_bps"),
    ],
)
def test_bad_surcharge_rules_are_refused(merchant, system_actor, fields, code, param):
    with pytest.raises(InvalidRequestError) as refused:
        services.surcharge_rule_create(
            merchant_id=merchant.id,
            livemode=False,
            actor=system_actor,
            **{"currency": "eur", **fields},
        )
    assert refused.value.param == param
    if code:
        assert refused.value.code == code
    assert not SurchargeRule.objects.exists()
