"""`{% load money %}` then `{{ intent.amount|money:intent.currency }}` → €45.99."""

from django import template

from apps.core.money import format_amount

register = template.Library()


@register.filter
def money(amount, currency):
    return format_amount(amount, currency)
