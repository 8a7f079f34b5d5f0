from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from apps.connectors import selectors, services
from apps.connectors.api import serializers as s
from apps.connectors.representations import connector_representation
from apps.core.api.pagination import ListQuerySerializer, list_envelope, paginate
from apps.core.api.serializers import parse_input, parse_query
from apps.core.api.views import MerchantApiView

# GET and POST on one path share a view class (Django routes a path to one view); each method
# is one operation with its own serializers and schema, as in the other apps.


def _connectors_body(connectors) -> list[dict]:
    views = selectors.connector_health(connectors=list(connectors))
    return [connector_representation(c, views[c.public_id].as_dict()) for c in connectors]


class ConnectorListCreateApi(MerchantApiView):
    @extend_schema(
        operation_id="connectors_list",
        parameters=[ListQuerySerializer],
        responses=s.ConnectorListOutputSerializer,
    )
    def get(self, request):
        params = parse_query(ListQuerySerializer, request.query_params)
        rows, has_more = paginate(
            selectors.connector_list(merchant_id=self.merchant.id, livemode=self.livemode),
            params,
            url=request.path,
        )
        return Response(list_envelope(_connectors_body(rows), has_more=has_more, url=request.path))

    @extend_schema(
        operation_id="connectors_create",
        request=s.ConnectorCreateInputSerializer,
        responses={200: s.ConnectorOutputSerializer},
    )
    def post(self, request):
        data = parse_input(s.ConnectorCreateInputSerializer, request.data)
        connector = services.connector_create(
            merchant=self.merchant, livemode=self.livemode, actor=self.actor, **data
        )
        return Response(_connectors_body([connector])[0])


class ConnectorRetrieveUpdateApi(MerchantApiView):
    @extend_schema(operation_id="connectors_retrieve", responses=s.ConnectorOutputSerializer)
    def get(self, request, connector_id: str):
        connector = selectors.connector_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=connector_id, param="id"
        )
        return Response(_connectors_body([connector])[0])

    @extend_schema(
        operation_id="connectors_update",
        request=s.ConnectorUpdateInputSerializer,
        responses=s.ConnectorOutputSerializer,
    )
    def post(self, request, connector_id: str):
        data = parse_input(s.ConnectorUpdateInputSerializer, request.data)
        connector = selectors.connector_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=connector_id, param="id"
        )
        connector = services.connector_update(connector=connector, actor=self.actor, **data)
        return Response(_connectors_body([connector])[0])
