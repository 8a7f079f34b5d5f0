"""Radar's reads, scoped to the caller's merchant (a merchant sees its own lists and rules; the
platform's lists are named in rules but not listed or changed through the API)."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core.errors import NotFoundError
from apps.risk.models import BlockedPayment, Review, RiskRule, ValueList, ValueListItem


def value_list_list(*, merchant_id: int, livemode: bool, alias: str | None = None) -> QuerySet:
    qs = ValueList.objects.filter(merchant_id=merchant_id, livemode=livemode)
    return qs.filter(alias=alias) if alias else qs


def value_list_get(*, merchant_id: int, livemode: bool, public_id: str) -> ValueList:
    try:
        return ValueList.objects.get(
            merchant_id=merchant_id, livemode=livemode, public_id=public_id
        )
    except ValueList.DoesNotExist:
        raise NotFoundError(
            f"No such value list: '{public_id}'", code="resource_missing", param="id"
        ) from None


def value_list_item_list(*, value_list: ValueList, value: str | None = None) -> QuerySet:
    qs = ValueListItem.objects.filter(value_list=value_list).select_related("value_list")
    return qs.filter(value__iexact=value) if value else qs


def value_list_item_get(*, merchant_id: int, livemode: bool, public_id: str) -> ValueListItem:
    try:
        return ValueListItem.objects.select_related("value_list").get(
            value_list__merchant_id=merchant_id,
            value_list__livemode=livemode,
            public_id=public_id,
        )
    except ValueListItem.DoesNotExist:
        raise NotFoundError(
            f"No such value list item: '{public_id}'", code="resource_missing", param="id"
        ) from None


def rule_list(*, merchant_id: int, livemode: bool, enabled: bool | None = None) -> QuerySet:
    qs = RiskRule.objects.filter(merchant_id=merchant_id, livemode=livemode).order_by("-id")
    return qs if enabled is None else qs.filter(enabled=enabled)


def rule_get(*, merchant_id: int, livemode: bool, public_id: str) -> RiskRule:
    try:
        return RiskRule.objects.get(merchant_id=merchant_id, livemode=livemode, public_id=public_id)
    except RiskRule.DoesNotExist:
        raise NotFoundError(
            f"No such rule: '{public_id}'", code="resource_missing", param="id"
        ) from None


def review_for_intent(*, payment_intent: str) -> Review | None:
    return Review.objects.filter(payment_intent=payment_intent).order_by("-id").first()


def review_open_for_intent(*, payment_intent: str) -> Review | None:
    return Review.objects.filter(payment_intent=payment_intent, status=Review.Status.OPEN).first()


def blocked_payment_list(*, merchant_id: int, livemode: bool) -> QuerySet:
    return BlockedPayment.objects.filter(merchant_id=merchant_id, livemode=livemode)


def client_ip_parse(value: str) -> str:
    """The `Radar-Client-Ip` header as a normalized address; ValueError if it is not one."""
    from apps.risk.signals import client_ip_valid

    return client_ip_valid(value)


def decline_decision(**facts) -> dict:
    """Smart retries: what to do after a declined attempt (apps/risk/retries.py)."""
    from apps.risk.retries import decide

    return decide(**facts)
