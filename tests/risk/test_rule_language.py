"""The rule language: parsing, type checks and evaluation (apps/risk/lang.py)."""

from __future__ import annotations

import pytest

from apps.risk.lang import RuleSyntaxError, compile_predicate, parse


@pytest.mark.parametrize(
    ("predicate", "signals", "expected"),
    [
        (
            ":card_country: != :ip_country: and :amount: > 50000",
            {"card_country": "DE", "ip_country": "US", "amount": 60000},
            True,
        ),
        (
            ":card_country: != :ip_country: and :amount: > 50000",
            {"card_country": "DE", "ip_country": "DE", "amount": 60000},
            False,
        ),
        # an unknown IP country is not a mismatch
        (":card_country: != :ip_country:", {"card_country": "DE", "ip_country": ""}, False),
        (":declines_per_card_hourly: >= 3", {"declines_per_card_hourly": 3}, True),
        (":declines_per_card_hourly: >= 3", {}, False),
        (
            ":card_brand: = 'VISA' or (:amount: < 100 and not :is_eea_card:)",
            {"card_brand": "visa"},
            True,
        ),
        (
            ":card_brand: = 'VISA' or (:amount: < 100 and not :is_eea_card:)",
            {"card_brand": "amex", "amount": 50, "is_eea_card": True},
            False,
        ),
        ("::order_type:: = 'gift'", {"metadata": {"order_type": "Gift"}}, True),
        (":email_domain: in @trusted", {"email_domain": "example.com"}, True),
        (":email_domain: not in @trusted", {"email_domain": "example.com"}, False),
    ],
)
def test_predicates_evaluate(predicate, signals, expected):
    lists = {"trusted": frozenset({"example.com"})}
    assert compile_predicate(predicate)(signals, lists) is expected


@pytest.mark.parametrize(
    ("predicate", "code"),
    [
        (":amount: > 'big'", "rule_type_mismatch"),
        (":card_country: > 'DE'", "rule_type_mismatch"),
        (":card_country: = 5", "rule_type_mismatch"),
        (":amount: in @trusted", "rule_type_mismatch"),
        (":shoe_size: > 3", "rule_attribute_unknown"),
        (":email_domain: in @nope", "rule_list_unknown"),
        (":ip_address: in @trusted", "rule_list_type_mismatch"),
        (":amount: >", "rule_syntax_invalid"),
        ("(:amount: > 1", "rule_syntax_invalid"),
        (":amount: > 1 :amount:", "rule_syntax_invalid"),
        ("", "rule_syntax_invalid"),
        ("explode if :amount: > 1", "rule_action_invalid"),
        (":amount: > 1 ; drop", "rule_syntax_invalid"),
    ],
)
def test_bad_predicates_are_refused_with_their_code(predicate, code):
    with pytest.raises(RuleSyntaxError) as refused:
        parse(predicate, lists={"trusted": "email_domain"})
    assert refused.value.code == code


def test_a_whole_rule_names_its_action():
    assert parse("request_3ds if :risk_score: >= 65").action == "request_3ds"
    assert parse(":risk_score: >= 65").action is None
