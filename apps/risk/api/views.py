from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from apps.core.api.pagination import list_envelope, paginate
from apps.core.api.serializers import parse_input, parse_query
from apps.core.api.views import MerchantApiView
from apps.core.errors import InvalidRequestError, NotFoundError
from apps.risk import selectors, services
from apps.risk.api import serializers as s
from apps.risk.representations import (
    item_representation,
    rule_representation,
    value_list_representation,
)


class ValueListListCreateApi(MerchantApiView):
    @extend_schema(
        operation_id="radar_value_lists_list",
        parameters=[s.ValueListListQuerySerializer],
        responses=s.ValueListListOutputSerializer,
    )
    def get(self, request):
        params = parse_query(s.ValueListListQuerySerializer, request.query_params)
        rows, has_more = paginate(
            selectors.value_list_list(
                merchant_id=self.merchant.id, livemode=self.livemode, alias=params.get("alias")
            ),
            params,
            url=request.path,
        )
        body = [value_list_representation(v) for v in rows]
        return Response(list_envelope(body, has_more=has_more, url=request.path))

    @extend_schema(
        operation_id="radar_value_lists_create",
        request=s.ValueListCreateInputSerializer,
        responses={200: s.ValueListOutputSerializer},
    )
    def post(self, request):
        data = parse_input(s.ValueListCreateInputSerializer, request.data)
        value_list = services.value_list_create(
            merchant_id=self.merchant.id, livemode=self.livemode, actor=self.actor, **data
        )
        return Response(value_list_representation(value_list, items=[]))


class ValueListRetrieveDeleteApi(MerchantApiView):
    def _get(self, value_list_id: str):
        return selectors.value_list_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=value_list_id
        )

    @extend_schema(operation_id="radar_value_lists_retrieve", responses=s.ValueListOutputSerializer)
    def get(self, request, value_list_id: str):
        return Response(value_list_representation(self._get(value_list_id)))

    @extend_schema(
        operation_id="radar_value_lists_delete",
        responses={200: s.RadarDeletedOutputSerializer},
    )
    def delete(self, request, value_list_id: str):
        value_list = services.value_list_delete(
            value_list=self._get(value_list_id), actor=self.actor
        )
        return Response({"id": value_list.public_id, "object": "radar.value_list", "deleted": True})


def _referenced_list(view, public_id: str):
    """The value list a parameter names: an unknown one is a 400 naming `value_list`."""
    try:
        return selectors.value_list_get(
            merchant_id=view.merchant.id, livemode=view.livemode, public_id=public_id
        )
    except NotFoundError:
        raise InvalidRequestError(
            f"No such value list: {public_id!r}.", code="resource_missing", param="value_list"
        ) from None


class ValueListItemListCreateApi(MerchantApiView):
    @extend_schema(
        operation_id="radar_value_list_items_list",
        parameters=[s.ValueListItemListQuerySerializer],
        responses=s.ValueListItemListOutputSerializer,
    )
    def get(self, request):
        params = parse_query(s.ValueListItemListQuerySerializer, request.query_params)
        value_list = _referenced_list(self, params["value_list"])
        rows, has_more = paginate(
            selectors.value_list_item_list(value_list=value_list, value=params.get("value")),
            params,
            url=request.path,
        )
        body = [item_representation(i, value_list) for i in rows]
        return Response(list_envelope(body, has_more=has_more, url=request.path))

    @extend_schema(
        operation_id="radar_value_list_items_create",
        request=s.ValueListItemCreateInputSerializer,
        responses={200: s.ValueListItemOutputSerializer},
    )
    def post(self, request):
        data = parse_input(s.ValueListItemCreateInputSerializer, request.data)
        value_list = _referenced_list(self, data["value_list"])
        item = services.value_list_item_create(
            value_list=value_list, value=data["value"], actor=self.actor
        )
        return Response(item_representation(item, value_list))


class ValueListItemRetrieveDeleteApi(MerchantApiView):
    def _get(self, item_id: str):
        return selectors.value_list_item_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=item_id
        )

    @extend_schema(
        operation_id="radar_value_list_items_retrieve", responses=s.ValueListItemOutputSerializer
    )
    def get(self, request, item_id: str):
        return Response(item_representation(self._get(item_id)))

    @extend_schema(
        operation_id="radar_value_list_items_delete",
        responses={200: s.RadarDeletedOutputSerializer},
    )
    def delete(self, request, item_id: str):
        item = services.value_list_item_delete(item=self._get(item_id), actor=self.actor)
        return Response({"id": item.public_id, "object": "radar.value_list_item", "deleted": True})


class RuleListCreateApi(MerchantApiView):
    @extend_schema(
        operation_id="radar_rules_list",
        parameters=[s.RuleListQuerySerializer],
        responses=s.RuleListOutputSerializer,
    )
    def get(self, request):
        params = parse_query(s.RuleListQuerySerializer, request.query_params)
        # the platform's default rules appear (disabled) the first time a merchant lists rules
        services.rules_install_defaults(
            merchant_id=self.merchant.id, livemode=self.livemode, actor=self.actor
        )
        rows, has_more = paginate(
            selectors.rule_list(
                merchant_id=self.merchant.id,
                livemode=self.livemode,
                enabled=params.get("enabled"),
            ),
            params,
            url=request.path,
        )
        body = [rule_representation(r) for r in rows]
        return Response(list_envelope(body, has_more=has_more, url=request.path))

    @extend_schema(
        operation_id="radar_rules_create",
        request=s.RuleCreateInputSerializer,
        responses={200: s.RuleOutputSerializer},
    )
    def post(self, request):
        data = parse_input(s.RuleCreateInputSerializer, request.data)
        rule = services.rule_create(
            merchant_id=self.merchant.id, livemode=self.livemode, actor=self.actor, **data
        )
        return Response(rule_representation(rule))


class RuleRetrieveUpdateApi(MerchantApiView):
    def _get(self, rule_id: str):
        return selectors.rule_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=rule_id
        )

    @extend_schema(operation_id="radar_rules_retrieve", responses=s.RuleOutputSerializer)
    def get(self, request, rule_id: str):
        return Response(rule_representation(self._get(rule_id)))

    @extend_schema(
        operation_id="radar_rules_update",
        request=s.RuleUpdateInputSerializer,
        responses=s.RuleOutputSerializer,
    )
    def post(self, request, rule_id: str):
        data = parse_input(s.RuleUpdateInputSerializer, request.data)
        rule = services.rule_update(rule=self._get(rule_id), actor=self.actor, **data)
        return Response(rule_representation(rule))


class RuleDisableApi(MerchantApiView):
    @extend_schema(
        operation_id="radar_rules_disable",
        request=s.RuleDisableInputSerializer,
        responses=s.RuleOutputSerializer,
    )
    def post(self, request, rule_id: str):
        parse_input(s.RuleDisableInputSerializer, request.data)
        rule = selectors.rule_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=rule_id
        )
        rule = services.rule_update(rule=rule, actor=self.actor, enabled=False, note="disabled")
        return Response(rule_representation(rule))


class RuleTestApi(MerchantApiView):
    @extend_schema(
        operation_id="radar_rules_test",
        request=s.RuleTestInputSerializer,
        responses=s.RuleTestOutputSerializer,
    )
    def post(self, request, rule_id: str):
        data = parse_input(s.RuleTestInputSerializer, request.data)
        rule = selectors.rule_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=rule_id
        )
        return Response(services.rule_backtest(rule=rule, days=data["days"]))
