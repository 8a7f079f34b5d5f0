from html import escape
from urllib.parse import urlencode, urlsplit, urlunsplit

from django.http import HttpResponse, HttpResponseRedirect
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.pagination import list_envelope, paginate
from apps.core.api.serializers import parse_input, parse_query, timestamp_datetime
from apps.core.api.views import MerchantApiView, check_path_ids
from apps.core.errors import (
    CardError,
    InvalidRequestError,
    PlatformError,
    PSPIntegrationError,
    ServiceUnavailableError,
)
from apps.intents import selectors, services
from apps.intents.api import serializers as s
from apps.intents.models import IntentStatus
from apps.intents.representations import intent_representation, refund_representation
from apps.risk import selectors as risk_selectors


def _intent_response(intent, *, status: int = 200, expand: bool = False) -> Response:
    """A confirm that ended in a decline answers 402 in the error envelope, with the intent; one
    that failed for a reason other than the card (the PSP refused the request or its
    credentials, or no PSP was available) answers 502 or 503 as an api_error."""
    body = intent_representation(intent, expand_attempts=expand)
    error = intent.last_payment_error
    if status == 200 and error and intent.status == IntentStatus.REQUIRES_PAYMENT_METHOD:
        if error.get("type") == "api_error":
            unavailable = error["code"] == "psp_unavailable"
            raise (
                PSPIntegrationError(
                    error["message"],
                    code=error["code"],
                    permanent=not unavailable,
                    extra={"payment_intent": body},
                )
                if not unavailable
                else ServiceUnavailableError(
                    error["message"], code=error["code"], extra={"payment_intent": body}
                )
            )
        raise CardError(
            error["message"],
            code=error["code"],
            decline_code=error.get("decline_code"),
            extra={"payment_intent": body},
        )
    return Response(body, status=status)


def _stored_answer(intent) -> tuple[int, bytes] | None:
    """The answer `_intent_response` gives for `intent` when it is the intent itself (200), as
    the bytes the idempotency record keeps: tx B of an approval stores it in its own statement
    (apps.core.idempotency.idempotency_result_statement). None for an error answer."""
    if intent.last_payment_error and intent.status == IntentStatus.REQUIRES_PAYMENT_METHOD:
        return None
    return 200, JSONRenderer().render(intent_representation(intent))


def _radar_context(request, merchant) -> dict:
    """Radar's signals from the request: the shopper's IP in the `Radar-Client-Ip` header (sent
    by the merchant's server or our checkout page; docs/risk.md), the merchant's country."""
    raw = request.META.get("HTTP_RADAR_CLIENT_IP", "")
    client_ip = ""
    if raw:
        try:
            client_ip = risk_selectors.client_ip_parse(raw)
        except ValueError:
            raise InvalidRequestError(
                "The Radar-Client-Ip header is not an IP address.",
                code="client_ip_invalid",
                param="Radar-Client-Ip",
            ) from None
    return {"client_ip": client_ip, "merchant_country": merchant.country}


class PaymentIntentListCreateApi(MerchantApiView):
    @extend_schema(
        operation_id="payment_intents_list",
        parameters=[s.PaymentIntentListQuerySerializer],
        responses=s.PaymentIntentListOutputSerializer,
    )
    def get(self, request):
        params = parse_query(
            s.PaymentIntentListQuerySerializer, request.query_params, lists=("expand",)
        )
        expand = "attempts" in params.get("expand", [])
        rows, has_more = paginate(
            selectors.intent_list(
                merchant_id=self.merchant.id,
                livemode=self.livemode,
                status=params.get("status"),
                order_id=params.get("order_id"),
                created_gte=timestamp_datetime(params.get("created_gte")),
                created_lte=timestamp_datetime(params.get("created_lte")),
                with_attempts=expand,
            ),
            params,
            url=request.path,
        )
        body = [intent_representation(i, expand_attempts=expand) for i in rows]
        return Response(list_envelope(body, has_more=has_more, url=request.path))

    @extend_schema(
        operation_id="payment_intents_create",
        request=s.PaymentIntentCreateInputSerializer,
        responses={200: s.PaymentIntentOutputSerializer},
    )
    def post(self, request):
        data = parse_input(s.PaymentIntentCreateInputSerializer, request.data)
        confirm = data.pop("confirm", False)
        if confirm and not data.get("payment_method"):
            # refused before anything is written: no intent without a payment method is left
            raise InvalidRequestError(
                "confirm=true needs a payment_method.",
                code="parameter_missing",
                param="payment_method",
            )
        if not confirm:
            intent = services.intent_create(
                merchant=self.merchant, livemode=self.livemode, actor=self.actor, **data
            )
            return _intent_response(intent)
        radar = _radar_context(request, self.merchant)
        intent = services.intent_prepare(merchant=self.merchant, livemode=self.livemode, **data)
        with self.result_stored_by_service(_stored_answer) as stored:
            try:
                intent = services.intent_create_and_confirm(
                    intent=intent, actor=self.actor, **radar
                )
            except PlatformError as exc:
                # the intent exists: name it, so the merchant can confirm it again later (read
                # again rather than refresh_from_db: django-fsm's refresh unprotects the status
                # field for the whole process, which races other threads' transitions)
                try:
                    intent = selectors.intent_get(
                        merchant_id=self.merchant.id,
                        livemode=self.livemode,
                        public_id=intent.public_id,
                    )
                except PlatformError:
                    raise exc from None  # not written (the database failed before it was)
                exc.extra.setdefault("payment_intent", intent_representation(intent))
                raise
            return stored() or _intent_response(intent)


class PaymentIntentRetrieveApi(MerchantApiView):
    @extend_schema(
        operation_id="payment_intents_retrieve",
        parameters=[OpenApiParameter("expand[]", str, many=True, enum=["attempts"])],
        responses=s.PaymentIntentOutputSerializer,
    )
    def get(self, request, intent_id: str):
        params = parse_query(
            s.PaymentIntentRetrieveQuerySerializer, request.query_params, lists=("expand",)
        )
        intent = selectors.intent_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=intent_id
        )
        body = intent_representation(intent, expand_attempts="attempts" in params.get("expand", []))
        return Response(body)


class PaymentIntentConfirmApi(MerchantApiView):
    @extend_schema(
        operation_id="payment_intents_confirm",
        request=s.PaymentIntentConfirmInputSerializer,
        responses=s.PaymentIntentOutputSerializer,
    )
    def post(self, request, intent_id: str):
        data = parse_input(s.PaymentIntentConfirmInputSerializer, request.data)
        intent = selectors.intent_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=intent_id
        )
        radar = _radar_context(request, self.merchant)
        with self.result_stored_by_service(_stored_answer) as stored:
            intent = services.intent_confirm(
                intent=intent, actor=self.actor, payment_method=data.get("payment_method"), **radar
            )
            return stored() or _intent_response(intent)


class PaymentIntentCaptureApi(MerchantApiView):
    @extend_schema(
        operation_id="payment_intents_capture",
        request=s.PaymentIntentCaptureInputSerializer,
        responses=s.PaymentIntentOutputSerializer,
    )
    def post(self, request, intent_id: str):
        data = parse_input(s.PaymentIntentCaptureInputSerializer, request.data)
        intent = selectors.intent_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=intent_id
        )
        intent = services.intent_capture(
            intent=intent, actor=self.actor, amount_to_capture=data.get("amount_to_capture")
        )
        return Response(intent_representation(intent))


class PaymentIntentCancelApi(MerchantApiView):
    @extend_schema(
        operation_id="payment_intents_cancel",
        request=s.PaymentIntentCancelInputSerializer,
        responses=s.PaymentIntentOutputSerializer,
    )
    def post(self, request, intent_id: str):
        data = parse_input(s.PaymentIntentCancelInputSerializer, request.data)
        intent = selectors.intent_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=intent_id
        )
        intent = services.intent_cancel(
            intent=intent, actor=self.actor, cancellation_reason=data.get("cancellation_reason", "")
        )
        return Response(intent_representation(intent))


class RefundListCreateApi(MerchantApiView):
    @extend_schema(
        operation_id="refunds_list",
        parameters=[s.RefundListQuerySerializer],
        responses=s.RefundListOutputSerializer,
    )
    def get(self, request):
        params = parse_query(s.RefundListQuerySerializer, request.query_params)
        rows, has_more = paginate(
            selectors.refund_list(
                merchant_id=self.merchant.id,
                livemode=self.livemode,
                payment_intent=params.get("payment_intent"),
            ),
            params,
            url=request.path,
        )
        return Response(
            list_envelope(
                [refund_representation(r) for r in rows], has_more=has_more, url=request.path
            )
        )

    @extend_schema(
        operation_id="refunds_create",
        request=s.RefundCreateInputSerializer,
        responses={200: s.RefundOutputSerializer},
    )
    def post(self, request):
        data = parse_input(s.RefundCreateInputSerializer, request.data)
        refund = services.refund_create(
            merchant=self.merchant, livemode=self.livemode, actor=self.actor, **data
        )
        return Response(refund_representation(refund))


class RefundRetrieveApi(MerchantApiView):
    @extend_schema(operation_id="refunds_retrieve", responses=s.RefundOutputSerializer)
    def get(self, request, refund_id: str):
        refund = selectors.refund_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=refund_id
        )
        return Response(refund_representation(refund))


# what the shopper's page is told, as Stripe's `redirect_status`; the merchant's server reads
# the intent through the API before shipping anything
_REDIRECT_STATUS = {
    IntentStatus.SUCCEEDED: "succeeded",
    IntentStatus.REQUIRES_CAPTURE: "succeeded",
    IntentStatus.REQUIRES_PAYMENT_METHOD: "failed",
    IntentStatus.CANCELED: "failed",
}


def _shop_url(return_url: str, params: dict[str, str]) -> str | None:
    """The merchant's return_url with our parameters added to its query (before any fragment),
    or None when there is none to go to."""
    if not return_url:
        return None
    parts = urlsplit(return_url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        return None  # validated at creation; an older row is not followed
    query = urlencode(params)
    return urlunsplit(parts._replace(query=f"{parts.query}&{query}" if parts.query else query))


class PaymentIntentReturnApi(APIView):
    """Where the PSP sends the shopper's browser after a redirect (3-D Secure): no API key
    (the browser has none; the intent's unguessable id is in the URL the PSP was given). The
    authorization is completed from what the PSP sent back, then the browser goes on to the
    intent's `return_url` with `payment_intent` and `redirect_status`, or sees a short page."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        check_path_ids(kwargs)

    @extend_schema(
        operation_id="payment_intents_return",
        auth=[],
        responses={(302, "text/html"): None, (200, "text/html"): str},
    )
    def get(self, request, intent_id: str):
        # the PSP's parameters (Adyen: redirectResult), bounded: they come from a browser
        action_result = {
            key: value[:4096] for key, value in list(request.query_params.items())[:20]
        }
        intent = services.intent_return_from_action(
            public_id=intent_id, action_result=action_result
        )
        # from our state after the PSP's answer was applied, never from the query the browser
        # brought (a forged `redirect_status=succeeded` goes nowhere)
        status = _REDIRECT_STATUS.get(intent.status, "processing")
        target = _shop_url(
            intent.return_url, {"payment_intent": intent.public_id, "redirect_status": status}
        )
        if target:
            return HttpResponseRedirect(target)
        status = escape(status)
        return HttpResponse(
            f"<!doctype html><title>Payment {status}</title>"
            f"<h1>Payment {status}</h1><p>{escape(intent.public_id)}</p>",
            content_type="text/html; charset=utf-8",
        )
