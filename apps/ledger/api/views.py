"""`/v1/balance` and `/v1/balance_transactions`: the merchant's own balance in the ledger."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from apps.core.api.pagination import list_envelope, paginate
from apps.core.api.serializers import parse_query, timestamp_datetime
from apps.core.api.views import MerchantApiView
from apps.core.money import normalize_currency
from apps.ledger import selectors
from apps.ledger.api.serializers import (
    BalanceOutputSerializer,
    BalanceTransactionListOutputSerializer,
    BalanceTransactionListQuerySerializer,
)


def balance_transaction_representation(journal) -> dict:
    return {
        "id": journal.public_id,
        "object": "balance_transaction",
        "type": journal.kind,
        "amount": journal.amount,
        "fee": journal.fee,
        "net": journal.net,
        "currency": journal.currency,
        "source": journal.source_id or None,
        "source_type": journal.source_type or None,
        "description": journal.description or None,
        "created": int(journal.created_at.timestamp()),
    }


class BalanceRetrieveApi(MerchantApiView):
    @extend_schema(operation_id="balance_retrieve", responses=BalanceOutputSerializer)
    def get(self, request):
        balances = selectors.balances_for_merchant(
            merchant_id=self.merchant.id, livemode=self.livemode
        )
        return Response(
            {
                "object": "balance",
                "livemode": self.livemode,
                "available": [{"amount": b.available, "currency": b.currency} for b in balances],
                "pending": [{"amount": b.pending, "currency": b.currency} for b in balances],
            }
        )


class BalanceTransactionListApi(MerchantApiView):
    @extend_schema(
        operation_id="balance_transactions_list",
        parameters=[BalanceTransactionListQuerySerializer],
        responses=BalanceTransactionListOutputSerializer,
    )
    def get(self, request):
        params = parse_query(BalanceTransactionListQuerySerializer, request.query_params)
        currency = params.get("currency")
        rows, has_more = paginate(
            selectors.balance_transactions(
                merchant_id=self.merchant.id,
                livemode=self.livemode,
                currency=normalize_currency(currency) if currency else None,
                kind=params.get("type"),
                source_id=params.get("source"),
                created_gte=timestamp_datetime(params.get("created_gte")),
                created_lt=timestamp_datetime(params.get("created_lt")),
            ),
            params,
            url=request.path,
        )
        return Response(
            list_envelope(
                [balance_transaction_representation(j) for j in rows],
                has_more=has_more,
                url=request.path,
            )
        )
