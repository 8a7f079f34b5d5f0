"""`/v1/sellers`: marketplace sellers (connected accounts) of the calling merchant."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from apps.core.api.pagination import list_envelope, paginate
from apps.core.api.serializers import parse_input, parse_query
from apps.core.api.views import MerchantApiView
from apps.merchants import selectors, services
from apps.merchants.api.seller_serializers import (
    SellerCreateInputSerializer,
    SellerListOutputSerializer,
    SellerListQuerySerializer,
    SellerOutputSerializer,
)


class SellerCreateApi(MerchantApiView):
    @extend_schema(
        operation_id="sellers_create",
        request=SellerCreateInputSerializer,
        responses={200: SellerOutputSerializer},
    )
    def post(self, request):
        data = parse_input(SellerCreateInputSerializer, request.data)
        seller = services.seller_create(
            merchant=self.merchant, livemode=self.livemode, actor=self.actor, **data
        )
        return Response(SellerOutputSerializer(seller).data)


class SellerListApi(MerchantApiView):
    @extend_schema(
        operation_id="sellers_list",
        parameters=[SellerListQuerySerializer],
        responses=SellerListOutputSerializer,
    )
    def get(self, request):
        params = parse_query(SellerListQuerySerializer, request.query_params)
        rows, has_more = paginate(
            selectors.seller_list(merchant_id=self.merchant.id, livemode=self.livemode),
            params,
            url=request.path,
        )
        return Response(
            list_envelope(
                SellerOutputSerializer(rows, many=True).data, has_more=has_more, url=request.path
            )
        )


class SellerListCreateApi(SellerListApi, SellerCreateApi):
    """One URL, two operations: GET lists (SellerListApi), POST creates (SellerCreateApi)."""


class SellerRetrieveApi(MerchantApiView):
    @extend_schema(operation_id="sellers_retrieve", responses=SellerOutputSerializer)
    def get(self, request, seller_id: str):
        seller = selectors.seller_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=seller_id
        )
        return Response(SellerOutputSerializer(seller).data)
