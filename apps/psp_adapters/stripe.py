"""Stripe adapter: the PaymentIntents API (v1) with raw card data, as Stripe documents it.

Wire format: form-encoded bodies with bracketed nested keys, `Authorization: Bearer <api_key>`,
`Stripe-Version`, and an `Idempotency-Key` on every POST (Stripe replays the first result for 24 h).

References:
- PaymentIntents: https://docs.stripe.com/api/payment_intents (create, capture, cancel, retrieve,
  search), raw card data: https://docs.stripe.com/payments/payment-methods/pci-compliance
- Refunds: https://docs.stripe.com/api/refunds/create
- Errors and idempotency: https://docs.stripe.com/api/errors, https://docs.stripe.com/error-low-level
- Search: https://docs.stripe.com/search (query language; eventually consistent, about a minute)
- Webhook signatures: https://docs.stripe.com/webhooks#verify-manually
- Reports: https://docs.stripe.com/reports/payout-reconciliation,
  https://docs.stripe.com/reports/reporting-categories
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from apps.psp_adapters import disputes as dispute_vocabulary
from apps.psp_adapters.contract import (
    AuthorizeRequest,
    CancelRequest,
    CaptureRequest,
    ConnectorConfig,
    DisputeAcceptRequest,
    DisputeEvidenceRequest,
    DisputeNotice,
    Outcome,
    PayoutRequest,
    PayoutResult,
    ProviderOutcome,
    PSPResult,
    RefundRequest,
    RetrieveRequest,
    SettlementLine,
    WebhookEvent,
    WebhookVerificationError,
)
from apps.psp_adapters.decline_codes import is_hard
from apps.psp_adapters.http import (
    Operation,
    PSPClient,
    PSPResponse,
    PSPTransportError,
    in_doubt_result,
    minor_units,
    request_rejected_result,
    server_error_result,
)
from apps.psp_adapters.registry import register
from apps.psp_adapters.settlement import StripeSettlementReports

logger = logging.getLogger(__name__)

STRIPE_API_VERSION = "2024-06-20"
# Stripe's own libraries reject signed webhooks older than this (replay protection).
WEBHOOK_TOLERANCE_SECONDS = 300
SIGNATURE_SCHEME = "v1"

# The only reasons Stripe's refund API accepts; anything else stays in our own records.
REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})

# Stripe keeps idempotency keys for 24 hours: an identical re-send within this window is answered
# from its idempotency store, later it would be a new charge (https://docs.stripe.com/api/idempotent_requests)
RESEND_WINDOW_SECONDS = 20 * 3600
# Search is eventually consistent ("under normal conditions, data is searchable in less than a
# minute"; longer during an incident): an empty result only proves absence once this has passed
# since the attempt was sent (https://docs.stripe.com/search#data-freshness)
SEARCH_SETTLED_SECONDS = 3600

# When a search finds several PaymentIntents for one attempt, the one holding money wins.
_STATUS_PRIORITY = {
    "succeeded": 5,
    "requires_capture": 4,
    "processing": 3,
    "requires_action": 2,
    "requires_payment_method": 1,
}

# Balance transaction reporting categories -> SettlementLine.record_type.
REPORTING_CATEGORIES = {
    "charge": "charge",
    "refund": "refund",
    "refund_failure": "refund",
    "dispute": "chargeback",
    "dispute_reversal": "chargeback",
    "fee": "fee",
    "network_cost": "fee",
    "payout": "payout",
    "payout_reversal": "payout",
}

_REFUND_EVENTS = frozenset(
    {"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"}
)


def encode_form(params: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding: nested dicts as `a[b][c]=v`, lists as `a[0]=v`, booleans as
    `true`/`false`; None values are left out."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if value is None:
            continue
        if isinstance(value, Mapping):
            pairs += encode_form(value, name)
        elif isinstance(value, (list, tuple)):
            pairs += encode_form({str(index): item for index, item in enumerate(value)}, name)
        elif isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        else:
            pairs.append((name, str(value)))
    return pairs


@register("stripe")
class StripeAdapter(StripeSettlementReports):
    connector_type = "stripe"
    has_payment_lookup = True
    has_refund_lookup = True
    resend_window_seconds = RESEND_WINDOW_SECONDS

    def __init__(self, config: ConnectorConfig, *, clock: Callable[[], float] = time.time):
        self.config = config
        self._clock = clock  # injectable for webhook timestamp tests
        self._http = PSPClient(
            config,
            headers={
                "Authorization": f"Bearer {config.credentials.get('api_key', '')}",
                "Stripe-Version": STRIPE_API_VERSION,
            },
        )

    def __repr__(self) -> str:
        return f"StripeAdapter(connector={self.config.connector_id!r})"

    # --- payments ---------------------------------------------------------------------------------

    def authorize(self, request: AuthorizeRequest) -> PSPResult:
        return self._create_payment_intent(request, Operation.AUTHORIZE)

    def capture(self, request: CaptureRequest) -> PSPResult:
        return self._payment_intent_call(
            "POST",
            f"/v1/payment_intents/{quote(request.psp_reference, safe='')}/capture",
            {"amount_to_capture": request.amount},
            idempotency_key=request.idempotency_key,
            operation=Operation.CAPTURE,
            reference=request.psp_reference,
        )

    def cancel(self, request: CancelRequest) -> PSPResult:
        return self._payment_intent_call(
            "POST",
            f"/v1/payment_intents/{quote(request.psp_reference, safe='')}/cancel",
            {},
            idempotency_key=request.idempotency_key,
            operation=Operation.CANCEL,
            reference=request.psp_reference,
        )

    def refund(self, request: RefundRequest) -> PSPResult:
        params: dict[str, Any] = {
            "payment_intent": request.psp_reference,
            "amount": request.amount,
            "metadata": {"refund_id": request.refund_id},
        }
        if request.reason in REFUND_REASONS:
            params["reason"] = request.reason
        try:
            response = self._send(
                "POST",
                "/v1/refunds",
                params=params,
                idempotency_key=request.idempotency_key,
                operation=Operation.REFUND,
                reference=request.refund_id,
            )
        except PSPTransportError as exc:
            return exc.result
        if not _is_object(response, "refund"):
            return self._error_result(response, Operation.REFUND)
        return _refund_result(response.payload, response)

    def retrieve_refund(self, request: RefundRequest) -> PSPResult:
        """The refund's current state: GET /v1/refunds/{id} when its id is known, otherwise the
        payment's refunds (GET /v1/refunds?payment_intent=…) matched on our refund id in their
        metadata. A well-formed list without it is Stripe's "no such refund" (not_charged)."""
        if request.refund_psp_reference:
            try:
                response = self._send(
                    "GET",
                    f"/v1/refunds/{quote(request.refund_psp_reference, safe='')}",
                    operation=Operation.RETRIEVE,
                    reference=request.refund_id,
                )
            except PSPTransportError as exc:
                return exc.result
            if not _is_object(response, "refund"):
                return self._error_result(response, Operation.RETRIEVE)
            return _refund_result(response.payload, response)
        try:
            response = self._send(
                "GET",
                "/v1/refunds",
                query={"payment_intent": request.psp_reference, "limit": "100"},
                operation=Operation.RETRIEVE,
                reference=request.refund_id,
            )
        except PSPTransportError as exc:
            return exc.result
        if not _is_object(response, "list"):
            return self._error_result(response, Operation.RETRIEVE)
        found = [
            r
            for r in response.payload.get("data") or []
            if isinstance(r, dict)
            and isinstance(r.get("metadata"), dict)
            and r["metadata"].get("refund_id") == request.refund_id
        ]
        if found:
            return _refund_result(found[0], response)
        return PSPResult(
            outcome=Outcome.UNKNOWN,
            raw_code="not_found",
            raw_message="the payment has no refund with this refund id",
            http_status=response.status_code,
            latency_ms=response.latency_ms,
            # a page that is not the last proves nothing
            not_charged=not response.payload.get("has_more"),
        )

    def dispute_submit_evidence(self, request: DisputeEvidenceRequest) -> PSPResult:
        """POST /v1/disputes/{id} with evidence[...] and submit. Documents are named by our
        file ids in their evidence fields (the simulator takes them as they are)."""
        evidence = dict(request.evidence)
        for document in request.documents:
            evidence[document.field] = document.file_id
        return self._dispute_call(
            f"/v1/disputes/{quote(request.psp_dispute_id, safe='')}",
            {"evidence": evidence, "submit": "true" if request.submit else "false"},
            request.idempotency_key,
            request.psp_dispute_id,
        )

    def dispute_accept(self, request: DisputeAcceptRequest) -> PSPResult:
        """POST /v1/disputes/{id}/close: the merchant concedes."""
        return self._dispute_call(
            f"/v1/disputes/{quote(request.psp_dispute_id, safe='')}/close",
            {},
            request.idempotency_key,
            request.psp_dispute_id,
        )

    def _dispute_call(
        self, path: str, params: dict[str, Any], idempotency_key: str, reference: str
    ) -> PSPResult:
        try:
            response = self._send(
                "POST",
                path,
                params=params,
                idempotency_key=idempotency_key,
                operation=Operation.DISPUTE,
                reference=reference,
            )
        except PSPTransportError as exc:
            return exc.result
        if not _is_object(response, "dispute"):
            return self._error_result(response, Operation.DISPUTE)
        return PSPResult(
            outcome=Outcome.APPROVED,
            psp_reference=str(response.payload.get("id") or reference),
            raw_code=str(response.payload.get("status") or ""),
            psp_status=str(response.payload.get("status") or ""),
            http_status=response.status_code,
            latency_ms=response.latency_ms,
        )

    def retrieve(self, request: RetrieveRequest) -> PSPResult:
        """Current state of the attempt's PaymentIntent.

        Without a PSP reference (the authorize response was lost) the PaymentIntent is found by
        our attempt id in its metadata with the Search API. Search is eventually consistent, so
        when it finds nothing and the original request is at hand, the original is re-sent with
        its Idempotency-Key: Stripe then replays the first result if it had processed it, and
        otherwise processes the attempt now, once. Stripe keeps keys for 24 hours, so past that
        the caller should not pass `original` any more. Without either, the outcome stays UNKNOWN.
        """
        if request.psp_reference:
            return self._payment_intent_call(
                "GET",
                f"/v1/payment_intents/{quote(request.psp_reference, safe='')}",
                None,
                operation=Operation.RETRIEVE,
                reference=request.psp_reference,
            )
        try:
            response = self._send(
                "GET",
                "/v1/payment_intents/search",
                query={"query": _metadata_query("attempt_id", request.attempt_id)},
                operation=Operation.RETRIEVE,
                reference=request.attempt_id,
            )
        except PSPTransportError as exc:
            return exc.result
        if not _is_object(response, "search_result"):
            return self._error_result(response, Operation.RETRIEVE)
        found = [pi for pi in response.payload.get("data") or [] if isinstance(pi, dict)]
        if found:
            if len(found) > 1:
                logger.warning(
                    "stripe search found %d payment intents for attempt %s",
                    len(found),
                    request.attempt_id,
                )
            best = max(found, key=lambda pi: _STATUS_PRIORITY.get(pi.get("status"), 0))
            return _payment_intent_result(best, response)
        if request.original is not None:
            return self._create_payment_intent(request.original, Operation.RETRIEVE)
        # a well-formed search result with no match is Stripe's "no such payment", once the
        # search index has caught up with the attempt
        settled = request.attempt_age_seconds >= SEARCH_SETTLED_SECONDS
        return PSPResult(
            outcome=Outcome.UNKNOWN,
            raw_code="not_found",
            raw_message="no PaymentIntent has this attempt id"
            + ("" if settled else " yet (search lags by about a minute)"),
            http_status=response.status_code,
            latency_ms=response.latency_ms,
            not_charged=settled,
        )

    def probe(self) -> PSPResult:
        """A read of a PaymentIntent that cannot exist: a 404 means the API is up and answering."""
        return self._payment_intent_call(
            "GET",
            "/v1/payment_intents/pi_connector_health_probe",
            None,
            operation=Operation.RETRIEVE,
            reference="probe",
        )

    # --- payouts (https://docs.stripe.com/api/payouts) --------------------------------------------

    def create_payout(self, request: PayoutRequest) -> PayoutResult | PSPResult:
        """`POST /v1/payouts`. A PSPResult when no HTTP answer came (the transport failure,
        classified by PSPClient as for every call: not sent or maybe sent)."""
        params = {
            "amount": request.amount,
            "currency": request.currency,
            "destination": request.destination,
            "metadata": {"payout_id": request.payout_id},
            "description": request.description or None,
        }
        try:
            response = self._send(
                "POST",
                "/v1/payouts",
                params=params,
                idempotency_key=request.idempotency_key,
                operation=Operation.PAYOUT,
                reference=request.payout_id,
            )
        except PSPTransportError as exc:
            return exc.result
        return _payout_result(response)

    def retrieve_payout(self, *, reference: str, payout_id: str = "") -> PayoutResult | PSPResult:
        try:
            # the reference is the provider's answer: one path segment, whatever it contains
            response = self._send(
                "GET",
                f"/v1/payouts/{quote(reference, safe='')}",
                operation=Operation.PAYOUT,
                reference=payout_id or reference,
            )
        except PSPTransportError as exc:
            return exc.result
        return _payout_result(response)

    def _create_payment_intent(self, request: AuthorizeRequest, operation: Operation) -> PSPResult:
        card = request.card
        params = {
            "amount": request.amount,
            "currency": request.currency.lower(),
            "confirm": True,
            "capture_method": "automatic" if request.capture else "manual",
            "payment_method_types": ["card"],
            "payment_method_data": {
                "type": "card",
                "card": {
                    "number": card.number,
                    "exp_month": card.exp_month,
                    "exp_year": card.exp_year,
                    "cvc": card.cvc,
                },
                "billing_details": {"name": card.holder_name} if card.holder_name else None,
            },
            "description": request.description or None,
            "return_url": request.return_url or None,
            "metadata": {**request.metadata, "attempt_id": request.attempt_id},
        }
        card_options: dict[str, Any] = {}
        if request.three_d_secure in ("any", "challenge"):
            card_options["request_three_d_secure"] = request.three_d_secure
        if request.sca_exemption in ("low_value", "transaction_risk_analysis"):
            # Stripe's one exemption indicator for a low-risk payment the merchant vouches for
            card_options["three_d_secure"] = {"exemption_indicator": "low_risk"}
        elif request.sca_exemption == "merchant_initiated":
            params["off_session"] = True
        if card_options:
            params["payment_method_options"] = {"card": card_options}
        return self._payment_intent_call(
            "POST",
            "/v1/payment_intents",
            params,
            idempotency_key=request.idempotency_key,
            operation=operation,
            reference=request.attempt_id,
        )

    def _payment_intent_call(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        *,
        operation: Operation,
        reference: str,
        idempotency_key: str = "",
    ) -> PSPResult:
        """One call whose answer is a PaymentIntent, mapped to a result."""
        try:
            response = self._send(
                method,
                path,
                params=params,
                idempotency_key=idempotency_key,
                operation=operation,
                reference=reference,
            )
        except PSPTransportError as exc:
            return exc.result
        if not _is_object(response, "payment_intent"):
            return self._error_result(response, operation)
        if operation is Operation.CANCEL:
            return _cancel_result(response.payload, response)
        return _payment_intent_result(response.payload, response)

    def _send(
        self,
        method: str,
        path: str,
        *,
        operation: Operation,
        reference: str,
        params: Mapping[str, Any] | None = None,
        query: Mapping[str, str] | None = None,
        idempotency_key: str = "",
    ) -> PSPResponse:
        headers = {"Idempotency-Key": idempotency_key} if method == "POST" else {}
        return self._http.request(
            method,
            path,
            operation=operation,
            reference=reference,
            headers=headers,
            form=encode_form(params or {}) if method == "POST" else None,
            params=query,
        )

    def _error_result(self, response: PSPResponse, operation: Operation) -> PSPResult:
        """Maps Stripe's error object: {"error": {"type", "code", "decline_code", "message",
        "payment_intent"}}. Declines come as type card_error with HTTP 402."""
        payload = response.payload if isinstance(response.payload, dict) else {}
        error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
        payment_intent = error.get("payment_intent")
        payment_intent = payment_intent if isinstance(payment_intent, dict) else {}
        psp_reference = payment_intent.get("id") or ""
        psp_status = payment_intent.get("status") or ""
        return replace(
            self._error_outcome(response, operation, error, psp_reference),
            psp_status=str(psp_status),
        )

    def _error_outcome(
        self, response: PSPResponse, operation: Operation, error: dict, psp_reference: str
    ) -> PSPResult:
        error_type = error.get("type") or ""
        code = error.get("code") or ""
        message = error.get("message") or ""
        status = response.status_code
        if status < 400:
            # a 2xx we cannot read: the PSP answered, so it may well have processed the request
            return in_doubt_result(
                response, raw_code="unreadable_response", psp_reference=psp_reference
            )
        if status >= 500:
            # Stripe: "treat the result of a 500 request as indeterminate"
            return server_error_result(
                response,
                raw_code=code or error_type,
                raw_message=message,
                psp_reference=psp_reference,
            )
        if error_type == "card_error":
            return _decline_result(error, response, psp_reference)
        if status == 409 or error_type == "idempotency_error":
            # a request with this key exists (other parameters) or is still running
            return in_doubt_result(
                response,
                raw_code=code or error_type,
                raw_message=message,
                psp_reference=psp_reference,
            )
        # 400/401/403/404/429: refused before execution (Stripe's rate limiter and validation
        # run before its idempotency layer, so nothing was processed)
        return request_rejected_result(
            response,
            operation,
            raw_code=code or error_type,
            raw_message=message,
            psp_reference=psp_reference,
        )

    # --- webhooks ---------------------------------------------------------------------------------

    def verify_webhook(self, headers: dict[str, str], body: bytes) -> None:
        """`Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`: HMAC-SHA256 of f"{t}.{body}" keyed
        by the endpoint secret. Several v1 values appear while a secret is being rolled."""
        secret = self.config.webhook_secret
        if not secret:
            raise WebhookVerificationError("no webhook signing secret is configured")
        header = _header(headers, "Stripe-Signature")
        if not header:
            raise WebhookVerificationError("missing Stripe-Signature header")
        timestamp, signatures = _parse_signature_header(header)
        if timestamp is None or not signatures:
            raise WebhookVerificationError("malformed Stripe-Signature header")
        expected = hmac.new(
            secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
        ).hexdigest()
        if not any(hmac.compare_digest(expected.encode(), sig.encode()) for sig in signatures):
            raise WebhookVerificationError("signature does not match the payload")
        if abs(self._clock() - timestamp) > WEBHOOK_TOLERANCE_SECONDS:
            raise WebhookVerificationError("signature timestamp is outside the tolerance")

    def parse_webhook(self, body: bytes) -> list[WebhookEvent]:
        """A Stripe Event -> our events. payment_intent.succeeded is an authorization for
        automatic capture and a capture for manual capture, because that is what it confirms."""
        event = _load_json_object(body, "Stripe event")
        event_id = event.get("id") or ""
        event_type = event.get("type") or ""
        created = event.get("created")
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        obj = data.get("object") if isinstance(data.get("object"), dict) else {}
        occurred_at = created if isinstance(created, int) else None

        if event_type.startswith("payment_intent."):
            parsed = _payment_intent_event(event_type, obj)
        elif event_type in _REFUND_EVENTS:
            parsed = _refund_event(obj)
        elif event_type.startswith("charge.dispute."):
            parsed = _dispute_event(obj, event_type)
        elif event_type.startswith("payout."):
            parsed = {
                "event_type": "payout",
                "psp_reference": obj.get("id", ""),
                "success": event_type != "payout.failed",
                "amount": obj.get("amount"),
                "currency": obj.get("currency", ""),
            }
        else:
            parsed = {
                "event_type": "other",
                "psp_reference": obj.get("payment_intent") or obj.get("id", ""),
                "success": True,
            }
        return [
            WebhookEvent(
                psp_event_id=event_id,
                occurred_at=occurred_at,
                raw_code=parsed.pop("raw_code", event_type),
                **parsed,
            )
        ]

    # --- settlement -------------------------------------------------------------------------------

    def parse_settlement_report(self, content: str) -> list[SettlementLine]:
        """Itemized balance-change or payout-reconciliation report (CSV). Amounts are decimal
        strings in major units; `fee` is what Stripe kept, `net` = `gross` - `fee`."""
        lines = []
        for row in csv.DictReader(io.StringIO(content.lstrip("\ufeff"))):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            if not row.get("balance_transaction_id") and not row.get("gross"):
                continue  # blank line
            currency = row["currency"].lower()
            category = row.get("reporting_category", "")
            lines.append(
                SettlementLine(
                    psp_reference=row.get("payment_intent_id")
                    or row.get("charge_id")
                    or row.get("source_id", ""),
                    record_type=REPORTING_CATEGORIES.get(category, "adjustment"),
                    gross=minor_units(row.get("gross", ""), currency),
                    fee=minor_units(row.get("fee", ""), currency),
                    net=minor_units(row.get("net", ""), currency),
                    currency=currency,
                    settled_at=_report_date(row),
                    merchant_reference=row.get("refund_metadata[refund_id]")
                    or row.get("payment_metadata[attempt_id]")
                    or "",
                )
            )
        return lines


# --- result mapping -------------------------------------------------------------------------------


def _is_object(response: PSPResponse, kind: str) -> bool:
    payload = response.payload
    return (
        200 <= response.status_code < 300
        and isinstance(payload, dict)
        and payload.get("object") == kind
    )


def _payment_intent_result(pi: dict[str, Any], response: PSPResponse) -> PSPResult:
    status = pi.get("status") or ""
    common = {
        "psp_reference": pi.get("id", ""),
        "http_status": response.status_code,
        "latency_ms": response.latency_ms,
    }
    if status == "succeeded":
        return PSPResult(
            outcome=Outcome.APPROVED,
            raw_code=status,
            amount=pi.get("amount_received"),
            captured=True,
            **common,
        )
    if status == "requires_capture":
        return PSPResult(
            outcome=Outcome.APPROVED,
            raw_code=status,
            amount=pi.get("amount_capturable"),
            captured=False,
            **common,
        )
    if status == "requires_action":
        return PSPResult(
            outcome=Outcome.REQUIRES_ACTION,
            raw_code=status,
            next_action=pi.get("next_action"),  # Stripe's shape is our API's shape
            amount=pi.get("amount"),
            captured=False,
            **common,
        )
    if status == "processing":
        return PSPResult(outcome=Outcome.PENDING, raw_code=status, captured=False, **common)
    if status == "requires_payment_method":
        error = pi.get("last_payment_error")
        if isinstance(error, dict):
            return _decline_result(error, response, pi.get("id", ""))
        return PSPResult(
            outcome=Outcome.SOFT_DECLINE,
            decline_code="generic_decline",
            raw_code=status,
            captured=False,
            not_charged=True,
            psp_status=status,
            **common,
        )
    if status == "canceled":
        # voided (by us or by Stripe): nothing was charged and nothing will be
        return PSPResult(
            outcome=Outcome.HARD_DECLINE,
            raw_code=status,
            raw_message=pi.get("cancellation_reason") or "",
            captured=False,
            not_charged=True,
            psp_status=status,
            **common,
        )
    return PSPResult(outcome=Outcome.UNKNOWN, raw_code=status or "unknown_status", **common)


_PAYOUT_STATUSES = {
    "paid": ProviderOutcome.PAID,
    "pending": ProviderOutcome.PENDING,
    "in_transit": ProviderOutcome.PENDING,
    "failed": ProviderOutcome.FAILED,
    "canceled": ProviderOutcome.FAILED,
}


def _payout_result(response: PSPResponse) -> PayoutResult:
    """A Payout object, or Stripe's error: refused (4xx) is REJECTED, not processed (a
    redirect, 401/403, 429, 503) RETRYABLE, maybe processed (other 5xx, 409 in flight, an
    unreadable 2xx) UNKNOWN."""
    status = response.status_code
    body = response.payload if isinstance(response.payload, dict) else {}
    if 200 <= status < 300:
        outcome = _PAYOUT_STATUSES.get(str(body.get("status")))
        if outcome is None or not body.get("id"):
            return PayoutResult(ProviderOutcome.UNKNOWN, http_status=status)
        return PayoutResult(
            outcome,
            reference=str(body["id"]),
            failure_code=str(body.get("failure_code") or ""),
            failure_message=str(body.get("failure_message") or "")[:255],
            arrival_date=body.get("arrival_date") if outcome == ProviderOutcome.PAID else None,
            http_status=status,
        )
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    if 300 <= status < 400 or status in (401, 403, 429, 503):
        # a redirect (never followed) or a configuration error or back-pressure: not processed
        return PayoutResult(ProviderOutcome.RETRYABLE, http_status=status)
    if status >= 500 or status == 409 or error.get("type") == "idempotency_error":
        # 5xx: processing may have begun; 409: the same key is still running
        return PayoutResult(ProviderOutcome.UNKNOWN, http_status=status)
    return PayoutResult(
        ProviderOutcome.REJECTED,
        failure_code=str(error.get("code") or f"http_{status}")[:40],
        failure_message=str(error.get("message") or "")[:255],
        http_status=status,
    )


def _cancel_result(pi: dict[str, Any], response: PSPResponse) -> PSPResult:
    if pi.get("status") == "canceled":
        return PSPResult(
            outcome=Outcome.APPROVED,
            psp_reference=pi.get("id", ""),
            raw_code="canceled",
            captured=False,
            amount=0,
            http_status=response.status_code,
            latency_ms=response.latency_ms,
        )
    return _payment_intent_result(pi, response)


def _decline_result(error: dict[str, Any], response: PSPResponse, psp_reference: str) -> PSPResult:
    """A card_error or a PaymentIntent's last_payment_error. Stripe's decline_code (the issuer's
    reason) wins; otherwise its error code (expired_card, incorrect_cvc…) is already normalized."""
    code = error.get("code") or ""
    decline_code = error.get("decline_code") or ""
    normalized = decline_code or (code if code and code != "card_declined" else "generic_decline")
    return PSPResult(
        outcome=Outcome.HARD_DECLINE if is_hard(normalized) else Outcome.SOFT_DECLINE,
        psp_reference=psp_reference,
        decline_code=normalized,
        raw_code=code or decline_code,
        raw_message=error.get("message") or "",
        http_status=response.status_code,
        latency_ms=response.latency_ms,
        captured=False,
        not_charged=True,  # a decline charges nothing
        network_advice_code=str(error.get("network_advice_code") or "")[:4],
    )


def _refund_result(refund: dict[str, Any], response: PSPResponse) -> PSPResult:
    status = refund.get("status") or ""
    outcome = {
        "succeeded": Outcome.APPROVED,
        "pending": Outcome.PENDING,
        "requires_action": Outcome.PENDING,
        "failed": Outcome.HARD_DECLINE,
        "canceled": Outcome.HARD_DECLINE,
    }.get(status, Outcome.UNKNOWN)
    return PSPResult(
        outcome=outcome,
        psp_reference=refund.get("id", ""),
        raw_code=refund.get("failure_reason") or status,
        amount=refund.get("amount"),
        http_status=response.status_code,
        latency_ms=response.latency_ms,
    )


# --- webhook helpers ------------------------------------------------------------------------------


def _payment_intent_event(event_type: str, pi: dict[str, Any]) -> dict[str, Any]:
    metadata = pi.get("metadata") if isinstance(pi.get("metadata"), dict) else {}
    parsed: dict[str, Any] = {
        "psp_reference": pi.get("id", ""),
        "attempt_id": metadata.get("attempt_id", ""),
        "currency": pi.get("currency", ""),
        "success": True,
    }
    if event_type == "payment_intent.succeeded":
        manual = pi.get("capture_method") == "manual"
        parsed.update(
            event_type="capture" if manual else "authorization", amount=pi.get("amount_received")
        )
    elif event_type == "payment_intent.amount_capturable_updated":
        parsed.update(event_type="authorization", amount=pi.get("amount_capturable"))
    elif event_type == "payment_intent.payment_failed":
        error = pi.get("last_payment_error")
        error = error if isinstance(error, dict) else {}
        code = error.get("code") or ""
        decline_code = error.get("decline_code") or ""
        parsed.update(
            event_type="authorization",
            success=False,
            amount=pi.get("amount"),
            decline_code=decline_code
            or (code if code and code != "card_declined" else "generic_decline"),
            raw_code=code or decline_code,
        )
    elif event_type == "payment_intent.canceled":
        parsed.update(event_type="cancellation", amount=pi.get("amount"))
    else:  # created, processing, requires_action, partially_funded…
        parsed.update(event_type="other", amount=pi.get("amount"))
    return parsed


def _refund_event(refund: dict[str, Any]) -> dict[str, Any]:
    metadata = refund.get("metadata") if isinstance(refund.get("metadata"), dict) else {}
    status = refund.get("status") or ""
    # only a final status is a refund outcome; pending refunds are recorded as "other"
    final = status in ("succeeded", "failed", "canceled")
    return {
        "event_type": "refund" if final else "other",
        "psp_reference": refund.get("payment_intent") or "",
        "refund_id": metadata.get("refund_id", ""),
        "success": (status == "succeeded") if final else True,
        "amount": refund.get("amount"),
        "currency": refund.get("currency", ""),
        "raw_code": refund.get("failure_reason") or status,
    }


def _dispute_event(dispute: dict[str, Any], event_type: str = "") -> dict[str, Any]:
    """charge.dispute.*: the Dispute object, normalized (its status is Stripe's own word)."""
    status = str(dispute.get("status") or "")
    normalized = "won" if status == "prevented" else status
    details = dispute.get("evidence_details")
    details = details if isinstance(details, dict) else {}
    method = dispute.get("payment_method_details")
    card = method.get("card") if isinstance(method, dict) else None
    card = card if isinstance(card, dict) else {}
    network_code = str(card.get("network_reason_code") or "")
    due_by = details.get("due_by")
    return {
        "event_type": "chargeback",
        "psp_reference": dispute.get("payment_intent") or dispute.get("charge") or "",
        "success": True,
        "amount": dispute.get("amount"),
        "currency": dispute.get("currency", ""),
        "raw_code": dispute.get("reason") or dispute.get("status") or "",
        "dispute": DisputeNotice(
            psp_dispute_id=str(dispute.get("id") or ""),
            raw_status=status,
            raw_event=event_type,
            stage=dispute_vocabulary.stripe_stage(status)
            if status in dispute_vocabulary.STRIPE_STATUSES
            else "",
            status=normalized if status in dispute_vocabulary.STRIPE_STATUSES else "",
            reason=dispute_vocabulary.reason_for(network_code, str(dispute.get("reason") or "")),
            network_reason_code=network_code,
            evidence_due_by=due_by if isinstance(due_by, int) else None,
            funds=dispute_vocabulary.STRIPE_FUNDS.get(event_type, ""),
            is_charge_refundable=bool(dispute.get("is_charge_refundable")),
            fee_returned=_fee_returned(dispute)
            if event_type == "charge.dispute.funds_reinstated"
            else 0,
        ),
    }


def _fee_returned(dispute: dict[str, Any]) -> int:
    """The reinstatement's balance transaction carries a negative fee when Stripe gives the
    dispute fee back."""
    transactions = dispute.get("balance_transactions")
    if not isinstance(transactions, list):
        return 0
    for transaction in reversed(transactions):
        if not isinstance(transaction, dict):
            continue
        amount, fee = transaction.get("amount"), transaction.get("fee")
        if isinstance(amount, int) and amount > 0:
            return -fee if isinstance(fee, int) and not isinstance(fee, bool) and fee < 0 else 0
    return 0


def _header(headers: Mapping[str, str], name: str) -> str:
    """Header lookup that ignores case, for plain dicts as well as Django's request.headers."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return ""


def _parse_signature_header(header: str) -> tuple[int | None, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for element in header.split(","):
        key, _, value = element.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return None, []
        elif key == SIGNATURE_SCHEME and value:
            signatures.append(value)
    return timestamp, signatures


def _load_json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"{what} is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} is not a JSON object")
    return data


def _metadata_query(key: str, value: str) -> str:
    """Stripe search clause metadata['key']:'value', quotes escaped with a backslash."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"metadata['{key}']:'{escaped}'"


def _report_date(row: Mapping[str, str]) -> str:
    """The settlement date of a report row as an ISO date: when its payout was effective, else
    when the funds became available, else when the transaction was created."""
    for column in (
        "automatic_payout_effective_at_utc",
        "automatic_payout_effective_at",
        "available_on_utc",
        "available_on",
        "created_utc",
        "created",
    ):
        value = row.get(column, "")
        if value.isdigit():  # unix seconds
            return datetime.fromtimestamp(int(value), tz=UTC).date().isoformat()
        if value:
            return value[:10]  # "2024-01-15 10:23:45" or "2024-01-15T10:23:45Z"
    return ""
