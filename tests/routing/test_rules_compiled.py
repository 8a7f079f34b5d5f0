"""The compiled matcher (one generated function per version) gives exactly the answer of the
rules evaluated one by one, for any rules and any payment (property-based)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from apps.routing.rules import PaymentFacts, parse_rule_set

CONNECTORS = {"mca_a": {"enabled": True}, "mca_b": {"enabled": True}}

conditions = st.one_of(
    st.tuples(st.integers(0, 20_000), st.integers(0, 20_000)).map(
        lambda r: {"field": "amount", "op": "between", "value": sorted(r)}
    ),
    st.builds(
        lambda op, v: {"field": "amount", "op": op, "value": v},
        st.sampled_from(["eq", "gt", "gte", "lt", "lte"]),
        st.integers(1, 20_000),
    ),
    st.builds(
        lambda op, v: {"field": "currency", "op": op, "value": v},
        st.sampled_from(["in", "not_in"]),
        st.lists(st.sampled_from(["eur", "usd", "gbp"]), min_size=1, max_size=2),
    ),
    st.builds(
        lambda op, v: {"field": "brand", "op": op, "value": v},
        st.sampled_from(["eq", "ne"]),
        st.sampled_from(["visa", "mastercard", "amex"]),
    ),
    st.builds(
        lambda v: {"field": "funding", "op": "in", "value": v},
        st.lists(st.sampled_from(["credit", "debit", "prepaid"]), min_size=1),
    ),
    st.builds(
        lambda v: {"field": "bin", "op": "prefix", "value": v},
        st.lists(st.sampled_from(["4", "42", "5", "51", "3782"]), min_size=1, max_size=2),
    ),
    st.tuples(
        st.sampled_from(["400000", "420000", "510000"]),
        st.sampled_from(["424299", "499999", "559999"]),
    )
    .filter(lambda r: r[0] <= r[1])
    .map(lambda r: {"field": "bin", "op": "range", "value": list(r)}),
    st.builds(
        lambda op, v: {"field": "issuer_country", "op": op, "value": v},
        st.sampled_from(["in", "not_in"]),
        st.lists(st.sampled_from(["US", "GB", "DE"]), min_size=1),
    ),
    st.builds(
        lambda v: {"field": "customer_country", "op": "eq", "value": v},
        st.sampled_from(["US", "DE"]),
    ),
    st.builds(
        lambda k, v: {"field": f"metadata.{k}", "op": "eq", "value": v},
        st.sampled_from(["channel", "tier"]),
        st.sampled_from(["web", "app", "gold"]),
    ),
    st.builds(
        lambda k, v: {"field": f"metadata.{k}", "op": "exists", "value": v},
        st.sampled_from(["channel", "tier"]),
        st.booleans(),
    ),
)

rules = st.lists(
    st.builds(
        lambda match, conds: {
            "match": match,
            "conditions": conds,
            "strategy": {"type": "priority", "connectors": ["mca_a"]},
        },
        st.sampled_from(["all", "any"]),
        st.lists(conditions, max_size=4),
    ),
    min_size=1,
    max_size=8,
)

payments = st.builds(
    PaymentFacts,
    amount=st.integers(1, 25_000),
    currency=st.sampled_from(["eur", "usd", "gbp", "jpy"]),
    brand=st.sampled_from(["visa", "mastercard", "amex", ""]),
    funding=st.sampled_from(["credit", "debit", "prepaid", "unknown"]),
    bin=st.sampled_from(["424242", "400056", "510510", "378282", "555555", "", "42"]),
    issuer_country=st.sampled_from(["US", "GB", "DE", ""]),
    customer_country=st.sampled_from(["US", "DE", ""]),
    metadata=st.dictionaries(
        st.sampled_from(["channel", "tier"]),
        st.sampled_from(["web", "app", "gold", ""]),
        max_size=2,
    ),
)


@settings(max_examples=150, deadline=None)
@given(rules=rules, facts=st.lists(payments, min_size=1, max_size=10))
def test_the_compiled_matcher_agrees_with_the_rules_one_by_one(rules, facts):
    rule_set = parse_rule_set(rules, [], CONNECTORS, check_reachability=False)
    for payment in facts:
        assert rule_set.first_match(payment) == rule_set.first_match_reference(payment)


def test_values_are_never_source_code():
    # a metadata key or value that looks like code stays a value
    rule_set = parse_rule_set(
        [
            {
                "conditions": [{"field": "metadata.x", "op": "eq", "value": "') or True or ('"}],
                "strategy": {"type": "priority", "connectors": ["mca_a"]},
            }
        ],
        [],
        CONNECTORS,
    )
    assert rule_set.first_match(PaymentFacts(amount=1, currency="eur")) is None
    assert (
        rule_set.first_match(
            PaymentFacts(amount=1, currency="eur", metadata={"x": "') or True or ('"})
        )
        is not None
    )
