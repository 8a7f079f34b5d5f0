"""Cursor pagination as the conventions say: `limit` (1-100), `starting_after`/`ending_before`
(public ids), `{"object": "list", "data": [...], "has_more": ...}`. Newest first."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from rest_framework import serializers

from apps.core.errors import InvalidRequestError

DEFAULT_LIMIT = 10
MAX_LIMIT = 100


class ListQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_LIMIT)
    starting_after = serializers.CharField(required=False, max_length=80)
    ending_before = serializers.CharField(required=False, max_length=80)


def paginate(queryset, params: dict, *, url: str, id_field: str = "public_id"):
    """Returns (rows, has_more). `queryset` is already scoped to the merchant and mode."""
    limit = params.get("limit") or DEFAULT_LIMIT
    after, before = params.get("starting_after"), params.get("ending_before")
    if after and before:
        raise InvalidRequestError(
            "Pass at most one of starting_after and ending_before.",
            code="parameter_invalid",
            param="ending_before",
        )
    cursor_value = after or before
    if cursor_value:
        param = "starting_after" if after else "ending_before"
        lookup = _cursor_lookup_value(queryset.model, id_field, cursor_value, param)
        try:
            cursor_pk = queryset.values_list("pk", flat=True).get(**{id_field: lookup})
        except queryset.model.DoesNotExist:
            raise InvalidRequestError(
                f"No such object: {cursor_value!r}.", code="resource_missing", param=param
            ) from None
    if before:
        rows = list(queryset.filter(pk__gt=cursor_pk).order_by("pk")[: limit + 1])
        has_more = len(rows) > limit
        rows = list(reversed(rows[:limit]))
    else:
        if after:
            queryset = queryset.filter(pk__lt=cursor_pk)
        rows = list(queryset.order_by("-pk")[: limit + 1])
        has_more = len(rows) > limit
        rows = rows[:limit]
    return rows, has_more


def _cursor_lookup_value(model, id_field: str, value: str, param: str):
    """The cursor as the id column's type: a version number must be digits within the
    column's range, or the lookup itself would fail in the database."""
    field = model._meta.get_field(id_field)
    if isinstance(field, models.IntegerField):
        if not (value.isascii() and value.isdigit()) or int(value) > _INT_COLUMN_MAX:
            raise InvalidRequestError(
                f"{param} must be the number of an object in this list.",
                code="parameter_invalid",
                param=param,
            )
        return int(value)
    try:
        return field.to_python(value)
    except ValidationError:
        raise InvalidRequestError(
            f"{param} is not a valid id.", code="parameter_invalid", param=param
        ) from None


_INT_COLUMN_MAX = 2**31 - 1


def list_envelope(data: list, *, has_more: bool, url: str) -> dict:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}
