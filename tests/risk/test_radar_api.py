"""/v1/radar/value_lists, /v1/radar/value_list_items and /v1/radar/rules: Stripe's shapes, and
bad input refused with its code and param, nothing saved."""

from __future__ import annotations

import pytest

from apps.core.models import AuditLogEntry
from apps.risk.models import RiskRule, RiskRuleVersion, ValueList, ValueListItem

pytestmark = pytest.mark.django_db


def _list(api, alias="blocked_emails", item_type="email"):
    response = api.post(
        "/v1/radar/value_lists",
        {"alias": alias, "name": alias.title(), "item_type": item_type},
        format="json",
    )
    assert response.status_code == 200, response.content
    return response.json()


def test_value_lists_and_items_round_trip(api):
    value_list = _list(api)
    assert value_list["object"] == "radar.value_list"
    assert value_list["list_items"]["data"] == []
    item = api.post(
        "/v1/radar/value_list_items",
        {"value_list": value_list["id"], "value": " Fraud@Example.COM "},
        format="json",
    ).json()
    assert (item["object"], item["value"], item["value_list"]) == (
        "radar.value_list_item",
        "fraud@example.com",
        value_list["id"],
    )
    listed = api.get("/v1/radar/value_list_items", {"value_list": value_list["id"]}).json()
    assert [i["id"] for i in listed["data"]] == [item["id"]]
    got = api.get(f"/v1/radar/value_lists/{value_list['id']}").json()
    assert got["list_items"]["data"][0]["value"] == "fraud@example.com"
    assert (
        api.get("/v1/radar/value_lists", {"alias": "blocked_emails"}).json()["data"][0]["id"]
        == (value_list["id"])
    )

    deleted = api.delete(f"/v1/radar/value_list_items/{item['id']}").json()
    assert deleted == {"id": item["id"], "object": "radar.value_list_item", "deleted": True}
    assert api.delete(f"/v1/radar/value_lists/{value_list['id']}").json()["deleted"] is True
    assert not ValueList.objects.exists()
    assert AuditLogEntry.objects.filter(action__startswith="radar.value_list").count() == 4


@pytest.mark.parametrize(
    ("item_type", "value"),
    [
        ("email", "not-an-email"),
        ("email_domain", "no domain"),
        ("ip_address", "300.1.1.1"),
        ("card_bin", "42424"),
        ("card_bin", "abcdef"),
        ("country", "DEU"),
        ("card_fingerprint", "x"),
    ],
)
def test_a_list_item_of_the_wrong_type_is_refused(api, item_type, value):
    value_list = _list(api, alias=f"l_{item_type}", item_type=item_type)
    response = api.post(
        "/v1/radar/value_list_items",
        {"value_list": value_list["id"], "value": value},
        format="json",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("value_list_item_invalid", "value")
    assert not ValueListItem.objects.exists()


def test_value_list_bad_inputs(api, other_merchant):
    _list(api)
    for body, code, param in [
        (
            {"alias": "blocked_emails", "name": "x", "item_type": "email"},
            "value_list_alias_taken",
            "alias",
        ),
        ({"alias": "has space", "name": "x"}, "value_list_alias_invalid", "alias"),
        ({"alias": "ok", "name": "x", "item_type": "shoe"}, "parameter_invalid", "item_type"),
    ]:
        response = api.post("/v1/radar/value_lists", body, format="json")
        assert response.status_code == 400, body
        error = response.json()["error"]
        assert (error["param"], error["code"] if code != "parameter_invalid" else code) == (
            param,
            code,
        ) or error["param"] == param
    assert ValueList.objects.count() == 1
    missing = api.post(
        "/v1/radar/value_list_items", {"value_list": "rsl_nope", "value": "a@b.co"}, format="json"
    )
    assert (missing.status_code, missing.json()["error"]["param"]) == (400, "value_list")


def test_rules_create_update_disable_are_versioned_and_audited(api):
    rule = api.post(
        "/v1/radar/rules",
        {"action": "review", "predicate": ":declines_per_card_hourly: >= 3"},
        format="json",
    ).json()
    assert (rule["object"], rule["action"], rule["enabled"], rule["version"]) == (
        "radar.rule",
        "review",
        True,
        1,
    )
    updated = api.post(
        f"/v1/radar/rules/{rule['id']}",
        {"predicate": ":declines_per_card_hourly: >= 4", "note": "less eager"},
        format="json",
    ).json()
    assert (updated["predicate"], updated["version"]) == (":declines_per_card_hourly: >= 4", 2)
    disabled = api.post(f"/v1/radar/rules/{rule['id']}/disable", {}, format="json").json()
    assert (disabled["enabled"], disabled["version"]) == (False, 3)
    versions = RiskRuleVersion.objects.filter(rule__public_id=rule["id"]).order_by("number")
    assert [(v.number, v.enabled) for v in versions] == [(1, True), (2, True), (3, False)]
    assert AuditLogEntry.objects.filter(object_id=rule["id"]).count() == 3

    listed = api.get("/v1/radar/rules").json()["data"]
    defaults = {r["default_rule"]: r for r in listed if r["default_rule"]}
    assert set(defaults) == {"card_testing_card", "card_testing_ip", "mismatched_countries"}
    assert not any(r["enabled"] for r in defaults.values())  # shipped off


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"action": "block", "predicate": ":amount: > 'lots'"}, "rule_type_mismatch", "predicate"),
        ({"action": "block", "predicate": ":mystery: > 1"}, "rule_attribute_unknown", "predicate"),
        ({"action": "block", "predicate": ":email: in @ghosts"}, "rule_list_unknown", "predicate"),
        ({"action": "block", "predicate": ":amount: >>> 1"}, "rule_syntax_invalid", "predicate"),
        (
            {"action": "block", "predicate": "review if :amount: > 1"},
            "rule_action_mismatch",
            "predicate",
        ),
    ],
)
def test_bad_rules_are_refused_and_nothing_saved(api, body, code, param):
    response = api.post("/v1/radar/rules", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (code, param)
    assert not RiskRule.objects.exists()


def test_a_list_named_by_a_rule_cannot_be_deleted(api):
    value_list = _list(api, alias="bad_ips", item_type="ip_address")
    api.post(
        "/v1/radar/rules",
        {"action": "block", "predicate": ":ip_address: in @bad_ips"},
        format="json",
    )
    response = api.delete(f"/v1/radar/value_lists/{value_list['id']}")
    assert (response.status_code, response.json()["error"]["code"]) == (409, "value_list_in_use")


def test_another_merchants_lists_and_rules_do_not_exist_for_me(api, other_merchant, system_actor):
    from apps.risk import services

    theirs = services.value_list_create(
        merchant_id=other_merchant.id,
        livemode=False,
        actor=system_actor,
        alias="x",
        name="x",
        item_type="email",
    )
    assert api.get(f"/v1/radar/value_lists/{theirs.public_id}").status_code == 404
    response = api.post(
        "/v1/radar/rules", {"action": "block", "predicate": ":email: in @x"}, format="json"
    )
    assert response.json()["error"]["code"] == "rule_list_unknown"
