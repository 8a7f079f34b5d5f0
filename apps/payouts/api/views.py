"""`/v1/payouts`: payouts of the merchant's own balance or of its sellers'."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from apps.core.api.pagination import list_envelope, paginate
from apps.core.api.serializers import parse_input, parse_query, timestamp_datetime
from apps.core.api.views import MerchantApiView
from apps.payouts import selectors, services
from apps.payouts.api.serializers import (
    PayoutCreateInputSerializer,
    PayoutListOutputSerializer,
    PayoutListQuerySerializer,
    PayoutOutputSerializer,
)
from apps.payouts.representations import payout_representation


class PayoutCreateApi(MerchantApiView):
    @extend_schema(
        operation_id="payouts_create",
        request=PayoutCreateInputSerializer,
        responses={200: PayoutOutputSerializer},
    )
    def post(self, request):
        data = parse_input(PayoutCreateInputSerializer, request.data)
        payout = services.payout_create(
            merchant=self.merchant, livemode=self.livemode, actor=self.actor, **data
        )
        return Response(payout_representation(payout))


class PayoutListApi(MerchantApiView):
    @extend_schema(
        operation_id="payouts_list",
        parameters=[PayoutListQuerySerializer],
        responses=PayoutListOutputSerializer,
    )
    def get(self, request):
        params = parse_query(PayoutListQuerySerializer, request.query_params)
        rows, has_more = paginate(
            selectors.payout_list(
                merchant_id=self.merchant.id,
                livemode=self.livemode,
                status=params.get("status"),
                seller=params.get("seller"),
                created_gte=timestamp_datetime(params.get("created_gte")),
                created_lte=timestamp_datetime(params.get("created_lte")),
            ),
            params,
            url=request.path,
        )
        return Response(
            list_envelope(
                [payout_representation(p) for p in rows], has_more=has_more, url=request.path
            )
        )


class PayoutListCreateApi(PayoutListApi, PayoutCreateApi):
    """One URL, two operations: GET lists (PayoutListApi), POST creates (PayoutCreateApi)."""


class PayoutRetrieveApi(MerchantApiView):
    @extend_schema(
        operation_id="payouts_retrieve",
        parameters=[OpenApiParameter("payout_id", str, OpenApiParameter.PATH)],
        responses=PayoutOutputSerializer,
    )
    def get(self, request, payout_id: str):
        payout = selectors.payout_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=payout_id
        )
        return Response(payout_representation(payout))


class PayoutCancelApi(MerchantApiView):
    @extend_schema(
        operation_id="payouts_cancel",
        request=None,
        parameters=[OpenApiParameter("payout_id", str, OpenApiParameter.PATH)],
        responses=PayoutOutputSerializer,
    )
    def post(self, request, payout_id: str):
        payout = selectors.payout_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=payout_id
        )
        payout = services.payout_cancel(payout=payout, actor=self.actor)
        return Response(payout_representation(payout))
