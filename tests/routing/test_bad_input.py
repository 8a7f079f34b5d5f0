"""Bad input: every case is a 400 with a clear message and the `param`, and nothing is saved."""

from __future__ import annotations

import pytest

from apps.connectors.models import Connector
from apps.core.models import AuditLogEntry
from apps.routing.models import RoutingProfile, RoutingProfileVersion

pytestmark = pytest.mark.django_db


@pytest.fixture
def a(make_connector):
    return make_connector("a")


@pytest.fixture
def b(make_connector):
    return make_connector("b")


def _priority(*connectors, conditions=(), name="r"):
    return {
        "name": name,
        "conditions": list(conditions),
        "strategy": {"type": "priority", "connectors": list(connectors)},
    }


def _weighted(*pairs):
    return {
        "name": "split",
        "strategy": {
            "type": "weighted",
            "weights": [{"connector": c, "weight": w} for c, w in pairs],
        },
    }


def _cond(field, op, value):
    return {"field": field, "op": op, "value": value}


def _bad_profiles(a, b, foreign, disabled):
    A, B = a.public_id, b.public_id
    return [
        # (rules, fallback, code, param)
        (
            [_priority(foreign.public_id)],
            None,
            "connector_unknown",
            "rules[0][strategy][connectors][0]",
        ),
        ([_priority(A)], [foreign.public_id], "connector_unknown", "fallback[0]"),
        (
            [_priority("mca_doesnotexist")],
            None,
            "connector_unknown",
            "rules[0][strategy][connectors][0]",
        ),
        (
            [_priority(A, disabled.public_id)],
            None,
            "connector_disabled",
            "rules[0][strategy][connectors][1]",
        ),
        ([_priority(A, A)], None, "connector_duplicate", "rules[0][strategy][connectors][1]"),
        (
            [_priority(A, conditions=[_cond("colour", "eq", "red")])],
            None,
            "condition_field_unknown",
            "rules[0][conditions][0][field]",
        ),
        (
            [_priority(A, conditions=[_cond("amount", "gte", "100")])],
            None,
            "condition_value_invalid",
            "rules[0][conditions][0][value]",
        ),
        (
            [_priority(A, conditions=[_cond("currency", "in", "eur")])],
            None,
            "condition_value_invalid",
            "rules[0][conditions][0][value]",
        ),
        (
            [_priority(A, conditions=[_cond("currency", "in", ["euro"])])],
            None,
            "condition_value_invalid",
            "rules[0][conditions][0][value][0]",
        ),
        (
            [_priority(A, conditions=[_cond("brand", "gte", "visa")])],
            None,
            "condition_operator_invalid",
            "rules[0][conditions][0][op]",
        ),
        (
            [_priority(A, conditions=[_cond("amount", "between", [5000, 100])])],
            None,
            "condition_range_inverted",
            "rules[0][conditions][0][value]",
        ),
        (
            [_priority(A, conditions=[_cond("bin", "range", ["499999", "400000"])])],
            None,
            "condition_range_inverted",
            "rules[0][conditions][0][value]",
        ),
        (
            [_priority(A, conditions=[_cond("bin", "prefix", ["4x"])])],
            None,
            "condition_value_invalid",
            "rules[0][conditions][0][value][0]",
        ),
        (
            [_priority(A, conditions=[{"field": "amount", "op": "gte"}])],
            None,
            "parameter_missing",
            "rules[0][conditions][0][value]",
        ),
        (
            [_weighted((A, 70), (B, 0))],
            None,
            "weights_invalid",
            "rules[0][strategy][weights][1][weight]",
        ),
        (
            [_weighted((A, 120), (B, -20))],
            None,
            "weights_invalid",
            "rules[0][strategy][weights][1][weight]",
        ),
        ([_weighted((A, 60), (B, 30))], None, "weights_invalid", "rules[0][strategy][weights]"),
        ([], None, "rules_empty", "rules"),
        (
            [{"name": "x", "strategy": {"type": "priority", "connectors": []}}],
            None,
            "parameter_missing",
            "rules[0][strategy][connectors]",
        ),
        (
            [{"name": "x", "strategy": {"type": "fastest", "connectors": [A]}}],
            None,
            "strategy_invalid",
            "rules[0][strategy][type]",
        ),
        (
            [{"name": "x", "priority": 1, "strategy": {"type": "priority", "connectors": [A]}}],
            None,
            "parameter_unknown",
            "rules[0][priority]",
        ),
        ([{"name": "x"}], None, "parameter_missing", "rules[0][strategy]"),
        # unreachable: a catch-all pre-empts everything after it
        (
            [_priority(A, name="all"), _priority(B, name="never")],
            None,
            "rule_unreachable",
            "rules[1]",
        ),
        # unreachable: the first rule is broader on every condition it has
        (
            [
                _priority(A, conditions=[_cond("currency", "in", ["eur", "usd"])]),
                _priority(
                    B, conditions=[_cond("currency", "eq", "eur"), _cond("amount", "gt", 1000)]
                ),
            ],
            None,
            "rule_unreachable",
            "rules[1]",
        ),
        (
            [
                _priority(A, conditions=[_cond("bin", "prefix", ["4"])]),
                _priority(B, conditions=[_cond("bin", "range", ["424200", "424299"])]),
            ],
            None,
            "rule_unreachable",
            "rules[1]",
        ),
        # can never match: contradictory conditions
        (
            [
                _priority(
                    A, conditions=[_cond("currency", "eq", "eur"), _cond("currency", "eq", "usd")]
                )
            ],
            None,
            "rule_unreachable",
            "rules[0][conditions]",
        ),
    ]


@pytest.fixture
def foreign(other_merchant, make_connector):
    return make_connector("theirs", merchant_=other_merchant)


@pytest.fixture
def disabled(make_connector):
    return make_connector("off", enabled=False)


def test_each_bad_profile_is_a_clear_error_with_param_and_nothing_is_saved(
    api, a, b, foreign, disabled
):
    audit_before = AuditLogEntry.objects.count()
    for rules, fallback, code, param in _bad_profiles(a, b, foreign, disabled):
        body = {"name": "p", "rules": rules}
        if fallback is not None:
            body["fallback"] = fallback
        response = api.post("/v1/routing_profiles", body, format="json")
        assert response.status_code == 400, (code, response.content)
        error = response.json()["error"]
        assert (error["code"], error["param"]) == (code, param), (rules, error)
        assert error["type"] == "invalid_request_error"
        assert len(error["message"]) > 15
    assert RoutingProfile.objects.count() == 0
    assert RoutingProfileVersion.objects.count() == 0
    assert AuditLogEntry.objects.count() == audit_before


def test_a_bad_edit_creates_no_version(api, a, b):
    created = api.post(
        "/v1/routing_profiles", {"name": "p", "rules": [_priority(a.public_id)]}, format="json"
    ).json()
    response = api.post(
        f"/v1/routing_profiles/{created['id']}/versions",
        {"rules": [_weighted((a.public_id, 50), (b.public_id, 40))]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "rules[0][strategy][weights]"
    assert RoutingProfileVersion.objects.count() == 1


def test_reachable_rules_are_accepted(api, a, b):
    rules = [
        _priority(a.public_id, name="eur or visa", conditions=[])
        | {
            "match": "any",
            "conditions": [_cond("currency", "eq", "eur"), _cond("brand", "eq", "visa")],
        },
        _priority(b.public_id, name="usd", conditions=[_cond("currency", "eq", "usd")]),
        _priority(a.public_id, name="big", conditions=[_cond("amount", "gte", 100_000)]),
        _priority(b.public_id, name="rest"),
    ]
    response = api.post("/v1/routing_profiles", {"name": "p", "rules": rules}, format="json")
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"supported_currencies": []}, "parameter_missing", "supported_currencies"),
        ({"supported_currencies": ["euro"]}, "currency_invalid", "supported_currencies[0]"),
        ({"supported_brands": ["visa", "maestroo"]}, "parameter_invalid", "supported_brands[1]"),
        ({"supported_countries": ["Germany"]}, "parameter_invalid", "supported_countries[0]"),
        (
            {"fee_schedule": [{"brand": "*", "fixed": -1}]},
            "parameter_invalid",
            "fee_schedule[0][fixed]",
        ),
        ({"fee_schedule": [{"percent": 140}]}, "parameter_unknown", "fee_schedule[0][percent]"),
        ({"connector_type": "paypal"}, "parameter_invalid", "connector_type"),
        ({"base_url": "https://psp.example"}, "parameter_unknown", "base_url"),
        ({"endpoint": "https://psp.example"}, "parameter_invalid_choice", "endpoint"),
        ({"endpoint": "production"}, "parameter_invalid", "endpoint"),  # not in test mode
        ({"live_url_prefix": "abc"}, "parameter_invalid", "live_url_prefix"),  # Adyen live only
        ({"credentials": "sk_test_123"}, "parameter_invalid", "credentials"),
    ],
)
def test_bad_connectors_are_refused_with_param(api, body, code, param):
    payload = {
        "name": "psp",
        "connector_type": "stripe",
        "credentials": {"api_key": "sk_test_abcdefghijkl"},
        "supported_currencies": ["eur"],
        **body,
    }
    response = api.post("/v1/connectors", payload, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (code, param)
    assert Connector.objects.count() == 0
