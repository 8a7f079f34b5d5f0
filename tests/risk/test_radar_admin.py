"""Risk staff's back-office: the `risk` group edits lists and rules of the merchants it serves
(through the services: same validation, versions, audit), decides reviews with its own
permission, sees blocked payments; other roles cannot decide reviews."""

from __future__ import annotations

from apps.core.audit import Actor
from apps.intents.models import PaymentIntent
from apps.risk import services
from apps.risk.models import Review, RiskRule, ValueList, ValueListItem
from tests.factories import StaffUserFactory


def _staff(role, merchant):
    return StaffUserFactory(role=role, serves=[merchant])


def test_risk_staff_edit_lists_and_rules_through_the_services(client, staff_roles, merchant):
    client.force_login(_staff("risk", merchant))
    response = client.post(
        "/admin/risk/valuelist/add/",
        {"merchant": merchant.pk, "alias": "bad_bins", "name": "Bad BINs", "item_type": "card_bin"},
    )
    assert response.status_code == 302, response.content[:2000]
    value_list = ValueList.objects.get(alias="bad_bins")
    bad = client.post(
        "/admin/risk/valuelistitem/add/", {"value_list": value_list.pk, "value": "12ab"}
    )
    assert b"value_list_item_invalid" in bad.content
    assert not ValueListItem.objects.exists()
    client.post("/admin/risk/valuelistitem/add/", {"value_list": value_list.pk, "value": "424242"})
    assert list(value_list.items.values_list("value", flat=True)) == ["424242"]

    refused = client.post(
        "/admin/risk/riskrule/add/",
        {"merchant": merchant.pk, "action": "block", "predicate": ":card_bin: in @nope"},
    )
    assert b"rule_list_unknown" in refused.content
    client.post(
        "/admin/risk/riskrule/add/",
        {
            "merchant": merchant.pk,
            "action": "block",
            "predicate": ":card_bin: in @bad_bins",
            "enabled": "on",
        },
    )
    rule = RiskRule.objects.get()
    assert (rule.version, rule.versions.count()) == (1, 1)
    tested = client.post(
        "/admin/risk/riskrule/",
        {"action": "test_last_30_days", "_selected_action": [rule.pk]},
        follow=True,
    )
    assert b"of 0 payments, 0 match" in tested.content


def test_review_queue_needs_the_decide_permission(
    client, staff_roles, merchant, pay, stripe_connector
):
    services.rule_create(
        merchant_id=merchant.id,
        livemode=False,
        actor=Actor.system("tests"),
        action="review",
        predicate=":amount: > 0",
    )
    body = pay().json()
    review = Review.objects.get(payment_intent=body["id"])

    client.force_login(_staff("support", merchant))
    page = client.get("/admin/risk/review/")
    assert b"approve_selected" not in page.content
    client.post(
        "/admin/risk/review/", {"action": "approve_selected", "_selected_action": [review.pk]}
    )
    review.refresh_from_db()
    assert review.status == "open"

    client.force_login(_staff("risk", merchant))
    assert b"approve_selected" in client.get("/admin/risk/review/").content
    client.post(
        "/admin/risk/review/",
        {"action": "approve_selected", "_selected_action": [review.pk]},
        follow=True,
    )
    review.refresh_from_db()
    assert review.status == "approved"
    intent = PaymentIntent.objects.get(public_id=body["id"])
    assert intent.status == "succeeded"  # the merchant had asked for automatic capture
    detail = client.get(f"/admin/intents/paymentintent/{intent.pk}/change/")
    assert b"manual_review" in detail.content


def test_blocked_payments_are_listed_with_their_rule(
    client, staff_roles, merchant, other_merchant, pay, rule, stripe_connector
):
    blocking = rule("block", ":amount: > 0")
    pay()
    client.force_login(_staff("risk", merchant))
    page = client.get("/admin/risk/blockedpayment/")
    assert blocking["id"].encode() in page.content
    client.force_login(_staff("risk", other_merchant))
    assert blocking["id"].encode() not in client.get("/admin/risk/blockedpayment/").content


def test_every_risk_admin_page_renders(client, merchant, pay, rule, stripe_connector):
    from apps.intents.models import PaymentIntent

    rule("review", ":amount: >= 9000")
    rule("block", ":amount: >= 90000")
    reviewed = pay(amount=9000).json()
    pay(amount=95000)
    services.surcharge_rule_create(
        merchant_id=merchant.id, livemode=False, actor=Actor.system("t"), currency="eur", fixed=10
    )
    client.force_login(StaffUserFactory(superuser=True))
    for model in (
        "valuelist",
        "valuelistitem",
        "riskrule",
        "review",
        "blockedpayment",
        "declinehandling",
        "surchargerule",
    ):
        for suffix in ("", "add/"):
            page = client.get(f"/admin/risk/{model}/{suffix}")
            assert page.status_code in (200, 403), (model, suffix, page.status_code)
    rule_row = RiskRule.objects.first()
    assert client.get(f"/admin/risk/riskrule/{rule_row.pk}/change/").status_code == 200
    review = Review.objects.get()
    assert client.get(f"/admin/risk/review/{review.pk}/change/").status_code == 200
    assert client.get("/admin/risk/review/?stale=yes").status_code == 200
    intent = PaymentIntent.objects.get(public_id=reviewed["id"])
    assert (
        b"manual_review" in client.get(f"/admin/intents/paymentintent/{intent.pk}/change/").content
    )


def test_a_platform_list_is_named_by_merchant_rules(api, pay, system_actor, stripe_connector):
    platform = services.value_list_create(
        merchant_id=None,
        livemode=False,
        actor=system_actor,
        alias="known_fraud_bins",
        name="Known fraud BINs",
        item_type="card_bin",
    )
    services.value_list_item_create(value_list=platform, value="424242", actor=system_actor)
    response = api.post(
        "/v1/radar/rules",
        {"action": "block", "predicate": ":card_bin: in @known_fraud_bins"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert pay().json()["error"]["decline_code"] == "fraudulent"
    # the platform's list is not the merchant's to list or delete
    assert api.get("/v1/radar/value_lists").json()["data"] == []
    assert api.delete(f"/v1/radar/value_lists/{platform.public_id}").status_code == 404
