"""The public shapes, as Stripe spells them (radar.value_list, radar.value_list_item), plus
radar.rule and review."""

from __future__ import annotations

from apps.risk.models import Review, RiskRule, ValueList, ValueListItem


def _ts(value) -> int | None:
    return int(value.timestamp()) if value else None


def item_representation(item: ValueListItem, value_list: ValueList | None = None) -> dict:
    value_list = value_list or item.value_list
    return {
        "id": item.public_id,
        "object": "radar.value_list_item",
        "created": _ts(item.created_at),
        "created_by": item.created_by,
        "livemode": value_list.livemode,
        "value": item.value,
        "value_list": value_list.public_id,
    }


def value_list_representation(value_list: ValueList, items: list | None = None) -> dict:
    items = items if items is not None else list(value_list.items.all()[:10])
    return {
        "id": value_list.public_id,
        "object": "radar.value_list",
        "alias": value_list.alias,
        "created": _ts(value_list.created_at),
        "created_by": value_list.created_by,
        "item_type": value_list.item_type,
        "list_items": {
            "object": "list",
            "data": [item_representation(i, value_list) for i in items],
            "has_more": value_list.items.count() > len(items),
            "url": f"/v1/radar/value_list_items?value_list={value_list.public_id}",
        },
        "livemode": value_list.livemode,
        "metadata": value_list.metadata,
        "name": value_list.name,
        "platform": value_list.merchant_id is None,
    }


def rule_representation(rule: RiskRule) -> dict:
    return {
        "id": rule.public_id,
        "object": "radar.rule",
        "action": rule.action,
        "predicate": rule.predicate,
        "description": rule.description,
        "enabled": rule.enabled,
        "default_rule": rule.default_key or None,
        "version": rule.version,
        "livemode": rule.livemode,
        "created": _ts(rule.created_at),
        "updated": _ts(rule.updated_at),
    }


def review_representation(review: Review) -> dict:
    return {
        "id": review.public_id,
        "object": "review",
        "payment_intent": review.payment_intent,
        "open": review.status == Review.Status.OPEN,
        "opened_reason": "rule",
        "closed_reason": None if review.status == Review.Status.OPEN else review.status,
        "amount": review.amount,
        "currency": review.currency,
        "rule": review.rule or None,
        "risk_score": review.risk_score,
        "risk_level": review.risk_level,
        "livemode": review.livemode,
        "created": _ts(review.opened_at),
    }
