from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from apps.core.api.serializers import parse_input
from apps.core.api.views import MerchantApiView
from apps.merchants.api.permissions import PublishableKeyAllowed
from apps.vault import selectors, services
from apps.vault.api.serializers import (
    PaymentMethodCreateInputSerializer,
    PaymentMethodOutputSerializer,
)


class PaymentMethodCreateApi(MerchantApiView):
    # browsers tokenize with the publishable key, so card data never crosses merchant servers
    permission_classes = [PublishableKeyAllowed]

    @extend_schema(
        operation_id="payment_methods_create",
        request=PaymentMethodCreateInputSerializer,
        responses={201: PaymentMethodOutputSerializer},
        description="Tokenizes a card. Callable with a publishable key (pk_…).",
    )
    def post(self, request):
        data = parse_input(PaymentMethodCreateInputSerializer, request.data)
        card = data["card"]
        billing = data.get("billing_details") or {}
        payment_method = services.payment_method_create(
            merchant=self.merchant,
            livemode=self.livemode,
            number=card["number"],
            exp_month=card["exp_month"],
            exp_year=card["exp_year"],
            cvc=card.get("cvc"),
            billing_name=billing.get("name", ""),
            billing_email=billing.get("email", ""),
            actor=self.actor,
        )
        return Response(PaymentMethodOutputSerializer(payment_method).data, status=201)


class PaymentMethodRetrieveApi(MerchantApiView):
    @extend_schema(operation_id="payment_methods_retrieve", responses=PaymentMethodOutputSerializer)
    def get(self, request, payment_method_id: str):
        payment_method = selectors.payment_method_get(
            merchant_id=self.merchant.id, livemode=self.livemode, public_id=payment_method_id
        )
        return Response(PaymentMethodOutputSerializer(payment_method).data)
