"""`/v1/disputes` and `/v1/files`: the merchant's disputes, its evidence and its acceptance."""

import base64
import binascii

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from apps.core.api.pagination import list_envelope, paginate
from apps.core.api.serializers import parse_input, parse_query, timestamp_datetime
from apps.core.api.views import MerchantApiView
from apps.core.errors import InvalidRequestError
from apps.disputes import selectors, services
from apps.disputes.api import serializers as s
from apps.disputes.representations import dispute_representation, file_representation

DISPUTE_ID = OpenApiParameter("dispute_id", str, OpenApiParameter.PATH)


class DisputeListApi(MerchantApiView):
    @extend_schema(
        operation_id="disputes_list",
        parameters=[s.DisputeListQuerySerializer],
        responses=s.DisputeListOutputSerializer,
    )
    def get(self, request):
        params = parse_query(s.DisputeListQuerySerializer, request.query_params)
        rows, has_more = paginate(
            selectors.dispute_list(
                merchant_id=self.merchant.id,
                livemode=self.livemode,
                status=params.get("status"),
                stage=params.get("stage"),
                payment_intent=params.get("payment_intent"),
                connector=params.get("connector"),
                created_gte=timestamp_datetime(params.get("created_gte")),
                created_lte=timestamp_datetime(params.get("created_lte")),
            ),
            params,
            url=request.path,
        )
        return Response(
            list_envelope(
                [dispute_representation(d) for d in rows], has_more=has_more, url=request.path
            )
        )


class DisputeRetrieveUpdateApi(MerchantApiView):
    def _dispute(self, dispute_id: str):
        return selectors.dispute_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=dispute_id
        )

    @extend_schema(
        operation_id="disputes_retrieve",
        parameters=[DISPUTE_ID],
        responses=s.DisputeOutputSerializer,
    )
    def get(self, request, dispute_id: str):
        return Response(dispute_representation(self._dispute(dispute_id)))

    @extend_schema(
        operation_id="disputes_update",
        parameters=[DISPUTE_ID],
        request=s.DisputeUpdateInputSerializer,
        responses=s.DisputeOutputSerializer,
    )
    def post(self, request, dispute_id: str):
        data = parse_input(s.DisputeUpdateInputSerializer, request.data)
        evidence = data.get("evidence")
        if evidence is not None and not isinstance(evidence, dict):
            raise InvalidRequestError(
                "evidence must be an object.", code="parameter_invalid_type", param="evidence"
            )
        for name, value in (evidence or {}).items():
            if value is not None and not isinstance(value, str):
                raise InvalidRequestError(
                    f"evidence[{name}] must be a string.",
                    code="parameter_invalid_type",
                    param=f"evidence[{name}]",
                )
        dispute = services.dispute_update(
            dispute=self._dispute(dispute_id),
            actor=self.actor,
            evidence=evidence,
            submit=data.get("submit", False),
        )
        return Response(dispute_representation(dispute))


class DisputeCloseApi(MerchantApiView):
    @extend_schema(
        operation_id="disputes_close",
        parameters=[DISPUTE_ID],
        request=s.DisputeCloseInputSerializer,
        responses=s.DisputeOutputSerializer,
    )
    def post(self, request, dispute_id: str):
        parse_input(s.DisputeCloseInputSerializer, request.data)
        dispute = selectors.dispute_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=dispute_id
        )
        return Response(
            dispute_representation(services.dispute_close(dispute=dispute, actor=self.actor))
        )


class FileCreateApi(MerchantApiView):
    @extend_schema(
        operation_id="files_create",
        request=s.FileCreateInputSerializer,
        responses=s.FileOutputSerializer,
    )
    def post(self, request):
        data = parse_input(s.FileCreateInputSerializer, request.data)
        try:
            content = base64.b64decode(data["file"], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequestError(
                "file must be the file's bytes in base64.", code="file_invalid", param="file"
            ) from None
        file = services.evidence_file_create(
            merchant=self.merchant,
            livemode=self.livemode,
            purpose=data["purpose"],
            filename=data.get("filename", ""),
            content=content,
            actor=self.actor,
        )
        return Response(file_representation(file))
