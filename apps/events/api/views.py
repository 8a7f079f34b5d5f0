from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from apps.core.api.exceptions import envelope_response
from apps.core.api.pagination import list_envelope, paginate
from apps.core.api.serializers import parse_input, parse_query, timestamp_datetime
from apps.core.api.views import MerchantApiView, check_path_ids
from apps.core.errors import InvalidRequestError, PlatformError
from apps.events import inbound, selectors, services
from apps.events.api import serializers as s
from apps.events.representations import (
    delivery_representation,
    endpoint_representation,
    event_representation,
)

# --------------------------------------------------------------------------- events


class EventListApi(MerchantApiView):
    @extend_schema(
        operation_id="events_list",
        parameters=[s.EventListQuerySerializer],
        responses=s.EventListOutputSerializer,
    )
    def get(self, request):
        params = parse_query(s.EventListQuerySerializer, request.query_params)
        queryset = selectors.event_list(
            merchant_id=self.merchant.id,
            livemode=self.livemode,
            type=params.get("type"),
            object_id=params.get("object_id"),
            created_gte=timestamp_datetime(params.get("created_gte")),
            created_gt=timestamp_datetime(params.get("created_gt")),
            created_lte=timestamp_datetime(params.get("created_lte")),
            created_lt=timestamp_datetime(params.get("created_lt")),
        )
        rows, has_more = paginate(queryset, params, url=request.path)
        return Response(
            list_envelope(
                [event_representation(e) for e in rows], has_more=has_more, url=request.path
            )
        )


class EventRetrieveApi(MerchantApiView):
    @extend_schema(operation_id="events_retrieve", responses=s.EventOutputSerializer)
    def get(self, request, event_id: str):
        event = selectors.event_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=event_id
        )
        return Response(event_representation(event))


# --------------------------------------------------------------------------- endpoints


class WebhookEndpointListCreateApi(MerchantApiView):
    @extend_schema(
        operation_id="webhook_endpoints_list",
        parameters=[s.WebhookEndpointListQuerySerializer],
        responses=s.WebhookEndpointListOutputSerializer,
    )
    def get(self, request):
        params = parse_query(s.WebhookEndpointListQuerySerializer, request.query_params)
        rows, has_more = paginate(
            selectors.webhook_endpoint_list(merchant_id=self.merchant.id, livemode=self.livemode),
            params,
            url=request.path,
        )
        return Response(
            list_envelope(
                [endpoint_representation(e) for e in rows], has_more=has_more, url=request.path
            )
        )

    @extend_schema(
        operation_id="webhook_endpoints_create",
        request=s.WebhookEndpointCreateInputSerializer,
        responses={200: s.WebhookEndpointWithSecretOutputSerializer},
    )
    def post(self, request):
        data = parse_input(s.WebhookEndpointCreateInputSerializer, request.data)
        issued = services.webhook_endpoint_create(
            merchant=self.merchant, livemode=self.livemode, actor=self.actor, **data
        )
        return Response(endpoint_representation(issued.endpoint, secret=issued.secret))


class WebhookEndpointRetrieveUpdateDeleteApi(MerchantApiView):
    def _endpoint(self, endpoint_id: str):
        return selectors.webhook_endpoint_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=endpoint_id
        )

    @extend_schema(
        operation_id="webhook_endpoints_retrieve", responses=s.WebhookEndpointOutputSerializer
    )
    def get(self, request, endpoint_id: str):
        return Response(endpoint_representation(self._endpoint(endpoint_id)))

    @extend_schema(
        operation_id="webhook_endpoints_update",
        request=s.WebhookEndpointUpdateInputSerializer,
        responses=s.WebhookEndpointOutputSerializer,
    )
    def post(self, request, endpoint_id: str):
        data = parse_input(s.WebhookEndpointUpdateInputSerializer, request.data)
        endpoint = services.webhook_endpoint_update(
            endpoint=self._endpoint(endpoint_id), actor=self.actor, **data
        )
        return Response(endpoint_representation(endpoint))

    @extend_schema(
        operation_id="webhook_endpoints_delete",
        responses={200: s.WebhookEndpointDeletedOutputSerializer},
    )
    def delete(self, request, endpoint_id: str):
        endpoint = services.webhook_endpoint_delete(
            endpoint=self._endpoint(endpoint_id), actor=self.actor
        )
        return Response({"id": endpoint.public_id, "object": "webhook_endpoint", "deleted": True})


class WebhookEndpointRollSecretApi(MerchantApiView):
    @extend_schema(
        operation_id="webhook_endpoints_roll_secret",
        request=s.WebhookEndpointRollSecretInputSerializer,
        responses=s.WebhookEndpointWithSecretOutputSerializer,
    )
    def post(self, request, endpoint_id: str):
        data = parse_input(s.WebhookEndpointRollSecretInputSerializer, request.data)
        endpoint = selectors.webhook_endpoint_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=endpoint_id
        )
        issued = services.webhook_endpoint_roll_secret(
            endpoint=endpoint, actor=self.actor, expires_in_seconds=data.get("expires_in")
        )
        return Response(endpoint_representation(issued.endpoint, secret=issued.secret))


class WebhookEndpointReplayApi(MerchantApiView):
    @extend_schema(
        operation_id="webhook_endpoints_replay",
        request=s.WebhookEndpointReplayInputSerializer,
        responses=s.WebhookEndpointReplayOutputSerializer,
    )
    def post(self, request, endpoint_id: str):
        data = parse_input(s.WebhookEndpointReplayInputSerializer, request.data)
        endpoint = selectors.webhook_endpoint_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=endpoint_id
        )
        replayed = services.webhook_deliveries_replay_failed(
            endpoint=endpoint, since=timestamp_datetime(data["since"]), actor=self.actor
        )
        return Response(
            {
                "object": "webhook_replay",
                "webhook_endpoint": endpoint.public_id,
                "replayed": replayed,
            }
        )


# --------------------------------------------------------------------------- deliveries


class WebhookDeliveryListApi(MerchantApiView):
    @extend_schema(
        operation_id="webhook_deliveries_list",
        parameters=[s.WebhookDeliveryListQuerySerializer],
        responses=s.WebhookDeliveryListOutputSerializer,
    )
    def get(self, request, endpoint_id: str):
        params = parse_query(s.WebhookDeliveryListQuerySerializer, request.query_params)
        endpoint = selectors.webhook_endpoint_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=endpoint_id
        )
        rows, has_more = paginate(
            selectors.webhook_delivery_list(endpoint=endpoint, status=params.get("status")),
            params,
            url=request.path,
        )
        return Response(
            list_envelope(
                [delivery_representation(d) for d in rows], has_more=has_more, url=request.path
            )
        )


class WebhookDeliveryReplayApi(MerchantApiView):
    @extend_schema(
        operation_id="webhook_deliveries_replay",
        request=None,
        responses=s.WebhookDeliveryOutputSerializer,
    )
    def post(self, request, endpoint_id: str, delivery_id: str):
        endpoint = selectors.webhook_endpoint_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=endpoint_id
        )
        delivery = selectors.webhook_delivery_get(endpoint=endpoint, public_id=delivery_id)
        services.webhook_delivery_replay(delivery=delivery, actor=self.actor)
        return Response(
            delivery_representation(
                selectors.webhook_delivery_get(endpoint=endpoint, public_id=delivery_id)
            )
        )


# --------------------------------------------------------------------------- inbound


@csrf_exempt
def psp_webhook_receive(request, connector_id: str):
    """`POST /webhooks/psp/{connector_id}`: no API key; the connector's adapter verifies the
    PSP's signature. Acknowledges fast; processing happens in Celery."""
    if request.method != "POST":
        error = InvalidRequestError(
            f"{request.method} is not allowed here; use POST.", code="method_not_allowed"
        )
        response = envelope_response(error, status=405, request=request)
        response["Allow"] = "POST"
        return response
    try:
        check_path_ids({"connector_id": connector_id})
        receipt = inbound.inbound_webhook_receive(
            connector_public_id=connector_id,
            headers=request.headers,
            body=request.body,
            remote_addr=request.META.get("REMOTE_ADDR", ""),
        )
    except PlatformError as error:
        return envelope_response(error, request=request)
    if receipt.connector_type == "adyen":
        return HttpResponse("[accepted]", content_type="text/plain")  # what Adyen expects
    return JsonResponse(
        {"received": True, "id": receipt.webhook.public_id, "duplicate": receipt.duplicate}
    )
