from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from apps.core.api.pagination import ListQuerySerializer, list_envelope, paginate
from apps.core.api.serializers import parse_input, parse_query
from apps.core.api.views import MerchantApiView
from apps.merchants import selectors, services
from apps.merchants.api.serializers import (
    AccountOutputSerializer,
    AccountUpdateInputSerializer,
    ApiKeyCreatedOutputSerializer,
    ApiKeyCreateInputSerializer,
    ApiKeyListOutputSerializer,
    ApiKeyOutputSerializer,
    ApiKeyRollInputSerializer,
)


class AccountRetrieveUpdateApi(MerchantApiView):
    @extend_schema(operation_id="account_retrieve", responses=AccountOutputSerializer)
    def get(self, request):
        return Response(AccountOutputSerializer(self.merchant).data)

    @extend_schema(
        operation_id="account_update",
        request=AccountUpdateInputSerializer,
        responses=AccountOutputSerializer,
    )
    def post(self, request):
        data = parse_input(AccountUpdateInputSerializer, request.data)
        merchant = services.merchant_update(merchant=self.merchant, actor=self.actor, **data)
        return Response(AccountOutputSerializer(merchant).data)


class ApiKeyListCreateApi(MerchantApiView):
    @extend_schema(
        operation_id="api_keys_list",
        parameters=[ListQuerySerializer],
        responses=ApiKeyListOutputSerializer,
    )
    def get(self, request):
        params = parse_query(ListQuerySerializer, request.query_params)
        rows, has_more = paginate(
            selectors.api_key_list(merchant=self.merchant, livemode=self.livemode),
            params,
            url=request.path,
        )
        return Response(
            list_envelope(
                ApiKeyOutputSerializer(rows, many=True).data, has_more=has_more, url=request.path
            )
        )

    @extend_schema(
        operation_id="api_keys_create",
        request=ApiKeyCreateInputSerializer,
        responses={201: ApiKeyCreatedOutputSerializer},
    )
    def post(self, request):
        data = parse_input(ApiKeyCreateInputSerializer, request.data)
        issued = services.api_key_create(
            merchant=self.merchant,
            kind=data["type"],
            livemode=self.livemode,
            name=data.get("name", ""),
            actor=self.actor,
        )
        body = ApiKeyOutputSerializer(issued.api_key).data | {"secret": issued.raw_key}
        return Response(body, status=201)


class ApiKeyRollApi(MerchantApiView):
    @extend_schema(
        operation_id="api_keys_roll",
        request=ApiKeyRollInputSerializer,
        responses={201: ApiKeyCreatedOutputSerializer},
    )
    def post(self, request, key_id: str):
        data = parse_input(ApiKeyRollInputSerializer, request.data)
        key = selectors.api_key_get(
            merchant=self.merchant, livemode=self.livemode, public_id=key_id
        )
        issued = services.api_key_roll(
            api_key=key, grace_seconds=data.get("expires_in", 0), actor=self.actor
        )
        body = ApiKeyOutputSerializer(issued.api_key).data | {"secret": issued.raw_key}
        return Response(body, status=201)


class ApiKeyRevokeApi(MerchantApiView):
    @extend_schema(operation_id="api_keys_revoke", request=None, responses=ApiKeyOutputSerializer)
    def post(self, request, key_id: str):
        key = selectors.api_key_get(
            merchant=self.merchant, livemode=self.livemode, public_id=key_id
        )
        key = services.api_key_revoke(api_key=key, actor=self.actor)
        return Response(ApiKeyOutputSerializer(key).data)
