"""Adyen adapter: Checkout API v71 with raw card data, as Adyen documents it.

Wire format: JSON bodies, `X-API-Key: <api_key>`, an `Idempotency-Key` header on every POST (at most
64 characters; Adyen keeps keys for at least 31 days and answers a re-sent request with the first
response, processing nothing new).

References:
- Payments: https://docs.adyen.com/api-explorer/Checkout/71/post/payments
- Result codes: https://docs.adyen.com/online-payments/build-your-integration/payment-result-codes
- Refusal reasons: https://docs.adyen.com/development-resources/refusal-reasons
- Capture (manual per payment: additionalData.manualCapture): https://docs.adyen.com/online-payments/capture
- Modifications: https://docs.adyen.com/api-explorer/Checkout/71/post/payments/(paymentPspReference)/captures
  (…/refunds, …/cancels); they answer 201 "received", the outcome comes by webhook
- Idempotency: https://docs.adyen.com/development-resources/api-idempotency
- Errors: https://docs.adyen.com/development-resources/response-handling
- Webhooks and HMAC: https://docs.adyen.com/development-resources/webhooks/verify-hmac-signatures
- Settlement details report: https://docs.adyen.com/reporting/settlement-detail-report
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import json
import uuid
from collections.abc import Mapping
from datetime import datetime
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
    PSPResult,
    RefundRequest,
    RequestError,
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
from apps.psp_adapters.settlement import AdyenSettlementReports

API_VERSION = "v71"
# "Idempotency keys are valid for a minimum period of 31 days after first submission"
# (https://docs.adyen.com/development-resources/api-idempotency): a re-send within this window
# is answered from Adyen's idempotency store and never charges twice
RESEND_WINDOW_SECONDS = 30 * 24 * 3600
IDEMPOTENCY_KEY_MAX_LENGTH = 64
DISPUTE_API_VERSION = "v30"
# Stripe's evidence file fields -> Adyen defenseDocumentTypeCode
_DEFENSE_DOCUMENT_TYPES = {
    "receipt": "GoodsOrServicesProvided",
    "shipping_documentation": "ProofOfDelivery",
    "customer_communication": "CustomerCommunication",
    "refund_policy": "TermsAndConditions",
    "cancellation_policy": "TermsAndConditions",
    "service_documentation": "GoodsOrServicesProvided",
    "uncategorized_file": "DefenseMaterial",
}
REFERENCE_MAX_LENGTH = 80

# Adyen refusal reasons -> normalized decline codes, as (refusalReasonCode, refusalReason, code).
# The hard/soft class follows from decline_codes.DECLINE_CLASSES. Lookup is by the reason text
# first (webhooks carry only the text), then by the numeric code.
REFUSAL_REASONS: tuple[tuple[str, str, str], ...] = (
    ("2", "Refused", "generic_decline"),
    ("3", "Referral", "call_issuer"),
    ("4", "Acquirer Error", "processing_error"),
    ("5", "Blocked Card", "restricted_card"),
    ("6", "Expired Card", "expired_card"),
    ("7", "Invalid Amount", "invalid_amount"),
    ("8", "Invalid Card Number", "incorrect_number"),
    ("9", "Issuer Unavailable", "issuer_not_available"),
    ("10", "Not supported", "card_not_supported"),
    ("11", "3D Not Authenticated", "authentication_required"),
    ("12", "Not enough balance", "insufficient_funds"),
    ("14", "Acquirer Fraud", "fraudulent"),
    ("15", "Cancelled", "generic_decline"),
    ("16", "Shopper Cancelled", "do_not_try_again"),
    ("17", "Invalid Pin", "incorrect_pin"),
    ("18", "Pin tries exceeded", "pin_try_exceeded"),
    ("19", "Pin validation not possible", "processing_error"),
    ("20", "FRAUD", "fraudulent"),  # Adyen's own risk checks scored it as fraud
    ("21", "Not Submitted", "processing_error"),
    ("22", "FRAUD-CANCELLED", "fraudulent"),
    ("23", "Transaction Not Permitted", "transaction_not_allowed"),
    ("24", "CVC Declined", "incorrect_cvc"),
    ("25", "Restricted Card", "restricted_card"),
    ("26", "Revocation Of Auth", "revocation_of_authorization"),
    ("27", "Declined Non Generic", "do_not_honor"),
    ("28", "Withdrawal amount exceeded", "card_velocity_exceeded"),
    ("29", "Withdrawal count exceeded", "withdrawal_count_limit_exceeded"),
    ("31", "Issuer Suspected Fraud", "fraudulent"),
    ("32", "AVS Declined", "incorrect_zip"),
    ("33", "Card requires online pin", "online_or_offline_pin_required"),
    ("34", "No checking account available on Card", "invalid_account"),
    ("35", "No savings account available on Card", "invalid_account"),
    ("36", "Mobile pin required", "online_or_offline_pin_required"),
    ("37", "Contactless fallback", "reenter_transaction"),
    ("38", "Authentication required", "authentication_required"),
    ("39", "RReq not received from DS", "authentication_required"),
    ("40", "Current AID is in Penalty Box", "processing_error"),
    ("41", "CVM Required Restart Payment", "reenter_transaction"),
    ("42", "3DS Authentication Error", "authentication_required"),
    # texts without a numeric code: raw acquirer responses some flows pass through
    ("", "Do Not Honor", "do_not_honor"),
    ("", "Do Not Honour", "do_not_honor"),
    ("", "Insufficient Funds", "insufficient_funds"),
)
_REFUSAL_BY_TEXT = {text.lower(): code for _, text, code in REFUSAL_REASONS}
_REFUSAL_BY_CODE = {number: code for number, _, code in REFUSAL_REASONS if number}

# 422 validation errors that are really card problems (the same card fails everywhere).
CARD_VALIDATION_ERRORS = {"101": "incorrect_number", "103": "invalid_cvc"}
# "Request already processed or in progress": a request with this idempotency key exists.
IDEMPOTENCY_IN_PROGRESS_ERROR = "704"

_ACTION_RESULT_CODES = frozenset(
    {"RedirectShopper", "IdentifyShopper", "ChallengeShopper", "PresentToShopper"}
)
_REFUND_REASONS = {
    "duplicate": "DUPLICATE",
    "fraudulent": "FRAUD",
    "requested_by_customer": "CUSTOMER REQUEST",
}

# Notification eventCode -> WebhookEvent.event_type.
EVENT_TYPES = {
    "AUTHORISATION": "authorization",
    "CAPTURE": "capture",
    "CAPTURE_FAILED": "capture",
    "CANCELLATION": "cancellation",
    "TECHNICAL_CANCEL": "cancellation",
    "REFUND": "refund",
    "REFUND_FAILED": "refund",
    "REFUNDED_REVERSED": "refund",
    "CHARGEBACK": "chargeback",
    "SECOND_CHARGEBACK": "chargeback",
    "NOTIFICATION_OF_CHARGEBACK": "chargeback",
    "CHARGEBACK_REVERSED": "chargeback",
    "PREARBITRATION_WON": "chargeback",
    "PREARBITRATION_LOST": "chargeback",
    "REQUEST_FOR_INFORMATION": "chargeback",
    "DISPUTE_DEFENSE_PERIOD_ENDED": "chargeback",
    "NOTIFICATION_OF_FRAUD": "chargeback",
    "PAIDOUT_REVERSED": "payout",
    "PAYOUT_THIRDPARTY": "payout",
    "PAYOUT_DECLINE": "payout",
    "PAYOUT_EXPIRE": "payout",
}
# These events say that something failed; Adyen sends them with success "true" (delivered).
_FAILURE_EVENTS = frozenset({"CAPTURE_FAILED", "REFUND_FAILED", "REFUNDED_REVERSED"})
_SIGNED_FIELDS = (
    "pspReference",
    "originalReference",
    "merchantAccountCode",
    "merchantReference",
)

# Settlement details report "Type" -> SettlementLine.record_type (compared in lower case).
SETTLEMENT_TYPES = {
    "settled": "charge",
    "settledbulk": "charge",
    "refunded": "refund",
    "refundedbulk": "refund",
    "refundedreversed": "refund",
    "chargeback": "chargeback",
    "secondchargeback": "chargeback",
    "chargebackreversed": "chargeback",
    "fee": "fee",
    "invoicededuction": "fee",
    "misccosts": "fee",
    "paymentcost": "fee",
    "merchantpayout": "payout",
}
_FEE_COLUMNS = ("commission", "markup", "scheme fees", "interchange")


def refusal_decline_code(reason: str, reason_code: str = "") -> str:
    """Adyen's refusalReason / refusalReasonCode as a normalized decline code."""
    return (
        _REFUSAL_BY_TEXT.get((reason or "").strip().lower())
        or _REFUSAL_BY_CODE.get(str(reason_code or "").strip())
        or "generic_decline"
    )


def notification_signing_string(item: Mapping[str, Any]) -> str:
    """pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:
    eventCode:success, absent fields as empty strings. Unlike the legacy hosted payment pages
    signature, webhook values are not escaped (Adyen's own libraries join them as they are)."""
    amount = item.get("amount") if isinstance(item.get("amount"), dict) else {}
    success = item.get("success", "")
    values = [
        *(item.get(name) for name in _SIGNED_FIELDS),
        amount.get("value"),
        amount.get("currency"),
        item.get("eventCode"),
        ("true" if success else "false") if isinstance(success, bool) else success,
    ]
    return ":".join("" if value is None else str(value) for value in values)


def notification_signature(item: Mapping[str, Any], hex_key: str) -> str:
    """Base64 HMAC-SHA256 of the signing string, keyed by the hex-decoded HMAC key."""
    digest = hmac.new(
        bytes.fromhex(hex_key), notification_signing_string(item).encode("utf-8"), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


@register("adyen")
class AdyenAdapter(AdyenSettlementReports):
    connector_type = "adyen"
    # the Checkout API has no payment lookup: unknowns resolve by idempotent re-send or webhook
    has_payment_lookup = False
    # nor a refund lookup: a refund's outcome comes by REFUND / REFUND_FAILED notification
    has_refund_lookup = False
    resend_window_seconds = RESEND_WINDOW_SECONDS

    def __init__(self, config: ConnectorConfig):
        self.config = config
        self._merchant_account = config.credentials.get("merchant_account", "")
        self._http = PSPClient(config, headers={"X-API-Key": config.credentials.get("api_key", "")})

    def __repr__(self) -> str:
        return f"AdyenAdapter(connector={self.config.connector_id!r})"

    # --- payments ---------------------------------------------------------------------------------

    def authorize(self, request: AuthorizeRequest) -> PSPResult:
        return self._make_payment(request, Operation.AUTHORIZE)

    def capture(self, request: CaptureRequest) -> PSPResult:
        body = {
            "merchantAccount": self._merchant_account,
            "amount": _amount(request.amount, request.currency),
            "reference": request.idempotency_key[:REFERENCE_MAX_LENGTH],
        }
        return self._modification(
            "captures", request.psp_reference, body, request.idempotency_key, Operation.CAPTURE
        )

    def cancel(self, request: CancelRequest) -> PSPResult:
        body = {
            "merchantAccount": self._merchant_account,
            "reference": request.idempotency_key[:REFERENCE_MAX_LENGTH],
        }
        return self._modification(
            "cancels", request.psp_reference, body, request.idempotency_key, Operation.CANCEL
        )

    def refund(self, request: RefundRequest) -> PSPResult:
        body: dict[str, Any] = {
            "merchantAccount": self._merchant_account,
            "amount": _amount(request.amount, request.currency),
            "reference": request.refund_id,
        }
        if request.reason in _REFUND_REASONS:
            body["merchantRefundReason"] = _REFUND_REASONS[request.reason]
        return self._modification(
            "refunds", request.psp_reference, body, request.idempotency_key, Operation.REFUND
        )

    def retrieve_refund(self, request: RefundRequest) -> PSPResult:
        """No refund lookup in the Checkout API: the outcome comes by notification."""
        return PSPResult(outcome=Outcome.UNKNOWN, raw_code="no_refund_lookup")

    def dispute_submit_evidence(self, request: DisputeEvidenceRequest) -> PSPResult:
        """Adyen's dispute service: supplyDefenseDocument for each document (the text evidence
        goes as one written statement), then defendDispute when submitting."""
        statement = "\n".join(f"{name}: {value}" for name, value in request.evidence.items())
        documents = (
            [
                (
                    "WrittenStatement",
                    "text/plain",
                    statement.encode(),
                )
            ]
            if statement
            else []
        )
        documents += [
            (_DEFENSE_DOCUMENT_TYPES.get(d.field, "DefenseMaterial"), d.content_type, d.content)
            for d in request.documents
        ]
        base = {
            "disputePspReference": request.psp_dispute_id,
            "merchantAccountCode": self._merchant_account,
        }
        for index, (type_code, content_type, content) in enumerate(documents):
            result = self._dispute_call(
                "supplyDefenseDocument",
                {
                    **base,
                    "defenseDocuments": [
                        {
                            "content": base64.b64encode(content).decode(),
                            "contentType": content_type,
                            "defenseDocumentTypeCode": type_code,
                        }
                    ],
                },
                f"{request.idempotency_key}:doc{index}",
                request.psp_dispute_id,
            )
            if result.outcome is not Outcome.APPROVED:
                return result
        if not request.submit:
            return PSPResult(outcome=Outcome.APPROVED, psp_reference=request.psp_dispute_id)
        return self._dispute_call(
            "defendDispute",
            {**base, "defenseReasonCode": "SupplyDefenseMaterial"},
            f"{request.idempotency_key}:defend",
            request.psp_dispute_id,
        )

    def dispute_accept(self, request: DisputeAcceptRequest) -> PSPResult:
        return self._dispute_call(
            "acceptDispute",
            {
                "disputePspReference": request.psp_dispute_id,
                "merchantAccountCode": self._merchant_account,
            },
            request.idempotency_key,
            request.psp_dispute_id,
        )

    def _dispute_call(
        self, action: str, body: dict[str, Any], idempotency_key: str, reference: str
    ) -> PSPResult:
        try:
            response = self._post(
                f"/ca/services/DisputeService/{DISPUTE_API_VERSION}/{action}",
                body,
                idempotency_key=idempotency_key,
                operation=Operation.DISPUTE,
                reference=reference,
            )
        except PSPTransportError as exc:
            return exc.result
        payload = response.payload if isinstance(response.payload, dict) else {}
        result = payload.get("disputeServiceResult")
        result = result if isinstance(result, dict) else {}
        if 200 <= response.status_code < 300 and result.get("success") is True:
            return PSPResult(
                outcome=Outcome.APPROVED,
                psp_reference=reference,
                raw_code=action,
                http_status=response.status_code,
                latency_ms=response.latency_ms,
            )
        return PSPResult(
            outcome=Outcome.ERROR,
            psp_reference=reference,
            raw_code=str(payload.get("errorCode") or response.status_code),
            raw_message=str(result.get("errorMessage") or payload.get("message") or "")[:500],
            http_status=response.status_code,
            latency_ms=response.latency_ms,
            request_error=RequestError.INVALID_REQUEST
            if 400 <= response.status_code < 500
            else RequestError.NONE,
        )

    def retrieve(self, request: RetrieveRequest) -> PSPResult:
        """Adyen's Checkout API has no payment lookup. Its documented way to learn the outcome
        of a request whose response was lost is to re-send the identical request with the same
        Idempotency-Key: Adyen answers with the original response and processes nothing new
        (and if the first never arrived, it is processed now, once). Without the original
        request the outcome stays UNKNOWN until the AUTHORISATION webhook arrives."""
        if request.action_result is not None:
            return self._payment_details(request)
        if request.original is None:
            return PSPResult(
                outcome=Outcome.UNKNOWN,
                psp_reference=request.psp_reference,
                raw_code="no_inquiry_api",
                raw_message="Adyen reports the outcome by AUTHORISATION webhook",
            )
        return self._make_payment(request.original, Operation.RETRIEVE)

    def probe(self) -> PSPResult:
        """A cancel of a PSP reference that cannot exist: refused (422) without side effects,
        which means the API is up and answering."""
        body = {"merchantAccount": self._merchant_account, "reference": "connector-probe"}
        return self._modification(
            "cancels",
            "CONNECTORPROBE00",
            body,
            f"connector-probe-{uuid.uuid4().hex}",
            Operation.CANCEL,
        )

    def _payment_details(self, request: RetrieveRequest) -> PSPResult:
        """After the shopper's redirect: POST /payments/details with the `redirectResult` Adyen
        sent back, which completes the payment and answers like /payments."""
        redirect_result = (request.action_result or {}).get("redirectResult") or ""
        if not redirect_result:
            return PSPResult(
                outcome=Outcome.UNKNOWN,
                psp_reference=request.psp_reference,
                raw_code="no_redirect_result",
                raw_message="the shopper came back without Adyen's redirectResult",
            )
        # keyed by the redirectResult too: a reload of the same return replays Adyen's answer,
        # while a forged or replayed one (another key) can never take the real one's answer
        digest = hashlib.sha256(redirect_result.encode()).hexdigest()[:16]
        return self._payment_call(
            "payments/details",
            {"details": {"redirectResult": redirect_result}},
            idempotency_key=f"{request.idempotency_key}-details-{digest}",
            operation=Operation.RETRIEVE,
            reference=request.attempt_id,
            amount=request.amount,
            capture=request.capture,
        )

    def _make_payment(self, request: AuthorizeRequest, operation: Operation) -> PSPResult:
        return self._payment_call(
            "payments",
            self._payment_body(request),
            idempotency_key=request.idempotency_key,
            operation=operation,
            reference=request.attempt_id,
            amount=request.amount,
            capture=request.capture,
            return_url=request.return_url,
        )

    def _payment_call(
        self,
        endpoint: str,
        body: dict[str, Any],
        *,
        idempotency_key: str,
        operation: Operation,
        reference: str,
        amount: int,
        capture: bool,
        return_url: str = "",
    ) -> PSPResult:
        """/payments and /payments/details: both answer with a resultCode."""
        try:
            response = self._post(
                f"/{API_VERSION}/{endpoint}",
                body,
                idempotency_key=idempotency_key,
                operation=operation,
                reference=reference,
            )
        except PSPTransportError as exc:
            return exc.result
        payload = response.payload
        if (
            200 <= response.status_code < 300
            and isinstance(payload, dict)
            and payload.get("resultCode")
        ):
            return _payment_result(
                payload, response, amount=amount, capture=capture, return_url=return_url
            )
        return _error_result(response, operation)

    def _payment_body(self, request: AuthorizeRequest) -> dict[str, Any]:
        card = request.card
        payment_method: dict[str, Any] = {
            "type": "scheme",
            "number": card.number,
            "expiryMonth": f"{card.exp_month:02d}",
            "expiryYear": str(card.exp_year),
        }
        if card.cvc:
            payment_method["cvc"] = card.cvc
        if card.holder_name:
            payment_method["holderName"] = card.holder_name
        body: dict[str, Any] = {
            "merchantAccount": self._merchant_account,
            "reference": request.attempt_id,
            "amount": _amount(request.amount, request.currency),
            "paymentMethod": payment_method,
            "shopperInteraction": "Ecommerce",
            "channel": "Web",
            "metadata": {**request.metadata, "attempt_id": request.attempt_id},
        }
        if request.return_url:
            body["returnUrl"] = request.return_url
        if request.customer_email:
            body["shopperEmail"] = request.customer_email
        if request.capture:
            body["captureDelayHours"] = 0  # capture immediately after authorisation
        else:
            body["additionalData"] = {"manualCapture": "true"}  # wait for our /captures call
        if request.three_d_secure in ("any", "challenge"):
            body["authenticationData"] = {
                "attemptAuthentication": "always",
                "threeDSRequestData": {
                    "challengeIndicator": "requestChallenge"
                    if request.three_d_secure == "challenge"
                    else "noPreference"
                },
            }
        if request.sca_exemption in _SCA_EXEMPTIONS:
            body.setdefault("additionalData", {})["scaExemption"] = _SCA_EXEMPTIONS[
                request.sca_exemption
            ]
        elif request.sca_exemption == "merchant_initiated":
            body["shopperInteraction"] = "ContAuth"
            body["recurringProcessingModel"] = "UnscheduledCardOnFile"
        return body

    def _modification(
        self,
        kind: str,
        payment_reference: str,
        body: dict[str, Any],
        idempotency_key: str,
        operation: Operation,
    ) -> PSPResult:
        try:
            response = self._post(
                f"/{API_VERSION}/payments/{quote(payment_reference, safe='')}/{kind}",
                body,
                idempotency_key=idempotency_key,
                operation=operation,
                reference=body.get("reference") or payment_reference,
            )
        except PSPTransportError as exc:
            return exc.result
        payload = response.payload
        if not (200 <= response.status_code < 300 and isinstance(payload, dict)):
            return _error_result(response, operation)
        if payload.get("status") != "received":
            return in_doubt_result(
                response,
                raw_code=str(payload.get("status") or "unreadable_response"),
                psp_reference=payment_reference,
            )
        amount = payload.get("amount") if isinstance(payload.get("amount"), dict) else {}
        # a refund is its own object with its own reference; captures and cancels are reported
        # against the payment
        reference = (
            payload.get("pspReference", "")
            if operation is Operation.REFUND
            else payload.get("paymentPspReference") or payment_reference
        )
        return PSPResult(
            outcome=Outcome.PENDING,  # the result arrives by CAPTURE/REFUND/CANCELLATION webhook
            psp_reference=reference,
            raw_code="received",
            amount=amount.get("value"),
            http_status=response.status_code,
            latency_ms=response.latency_ms,
        )

    def _post(
        self,
        path: str,
        body: dict[str, Any],
        *,
        idempotency_key: str,
        operation: Operation,
        reference: str,
    ) -> PSPResponse:
        return self._http.request(
            "POST",
            path,
            operation=operation,
            reference=reference,
            headers={"Idempotency-Key": adyen_idempotency_key(idempotency_key)},
            json=body,
        )

    # --- webhooks ---------------------------------------------------------------------------------

    def verify_webhook(self, headers: dict[str, str], body: bytes) -> None:
        """Every NotificationRequestItem must carry a valid additionalData.hmacSignature."""
        hex_key = self.config.credentials.get("hmac_key") or self.config.webhook_secret
        if not hex_key:
            raise WebhookVerificationError("no HMAC key is configured")
        try:
            bytes.fromhex(hex_key)
        except ValueError:
            raise WebhookVerificationError("the configured HMAC key is not hexadecimal") from None
        try:
            items = _notification_items(body)
        except ValueError as exc:
            raise WebhookVerificationError(str(exc)) from None
        if not items:
            raise WebhookVerificationError("the notification has no items")
        for item in items:
            additional = item.get("additionalData")
            signature = additional.get("hmacSignature") if isinstance(additional, dict) else None
            if not signature or not isinstance(signature, str):
                raise WebhookVerificationError("a notification item has no hmacSignature")
            expected = notification_signature(item, hex_key)
            if not hmac.compare_digest(expected.encode(), signature.encode()):
                raise WebhookVerificationError("hmacSignature does not match the notification")

    def parse_webhook(self, body: bytes) -> list[WebhookEvent]:
        return [_notification_event(item) for item in _notification_items(body)]

    # --- settlement -------------------------------------------------------------------------------

    def parse_settlement_report(self, content: str) -> list[SettlementLine]:
        """Settlement details report (CSV). Gross is in the payment currency (GC), net and fees
        in the settlement currency (NC); when they differ, gross is restated in NC as net + fees
        so that one line has one currency."""
        lines = []
        for raw in csv.DictReader(io.StringIO(content.lstrip("\ufeff"))):
            row = {_column(k): (v or "").strip() for k, v in raw.items() if k}
            if not row.get("psp reference") and not row.get("type"):
                continue  # blank line
            lines.append(_settlement_line(row))
        return lines


# --- result mapping -------------------------------------------------------------------------------


_SCA_EXEMPTIONS = {"low_value": "lowValue", "transaction_risk_analysis": "transactionRiskAnalysis"}


def _amount(value: int, currency: str) -> dict[str, Any]:
    return {"value": value, "currency": currency.upper()}


def adyen_idempotency_key(key: str) -> str:
    """Adyen accepts at most 64 characters; a longer key is replaced by its SHA-256 (64 hex
    characters), which is just as stable, so a re-send still matches."""
    if len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH:
        return key
    return hashlib.sha256(key.encode()).hexdigest()


def _payment_result(
    payload: dict[str, Any], response: PSPResponse, *, amount: int, capture: bool, return_url: str
) -> PSPResult:
    result_code = payload.get("resultCode") or ""
    reason = payload.get("refusalReason") or ""
    reason_code = str(payload.get("refusalReasonCode") or "")
    answered = payload.get("amount") if isinstance(payload.get("amount"), dict) else {}
    common = {
        "psp_reference": payload.get("pspReference", ""),
        "http_status": response.status_code,
        "latency_ms": response.latency_ms,
    }
    if result_code == "Authorised":
        return PSPResult(
            outcome=Outcome.APPROVED,
            raw_code=result_code,
            amount=answered.get("value", amount),
            captured=capture,  # captureDelayHours 0: captured with the authorisation
            **common,
        )
    if result_code in ("Refused", "Cancelled"):
        decline_code = refusal_decline_code(reason, reason_code)
        additional = payload.get("additionalData")
        advice = additional.get("merchantAdviceCode") if isinstance(additional, dict) else ""
        return PSPResult(
            outcome=Outcome.HARD_DECLINE if is_hard(decline_code) else Outcome.SOFT_DECLINE,
            decline_code=decline_code,
            raw_code=reason_code or result_code,
            raw_message=reason,
            captured=False,
            not_charged=True,
            # "03: Do Not Try Again" -> "03"
            network_advice_code=str(advice or "").split(":", 1)[0].strip()[:4],
            **common,
        )
    if result_code == "Error":
        # Adyen processed the request and it failed for a technical reason (a final state):
        # nothing was charged, another PSP may succeed
        return PSPResult(
            outcome=Outcome.ERROR,
            decline_code=refusal_decline_code(reason, reason_code)
            if reason or reason_code
            else "processing_error",
            raw_code=reason_code or result_code,
            raw_message=reason,
            captured=False,
            retryable_elsewhere=True,
            not_charged=True,
            **common,
        )
    if result_code in _ACTION_RESULT_CODES:
        return PSPResult(
            outcome=Outcome.REQUIRES_ACTION,
            raw_code=result_code,
            next_action=_next_action(payload.get("action"), return_url),
            amount=amount,
            captured=False,
            **common,
        )
    if result_code in ("Pending", "Received"):
        return PSPResult(outcome=Outcome.PENDING, raw_code=result_code, captured=False, **common)
    return PSPResult(outcome=Outcome.UNKNOWN, raw_code=result_code, **common)


def _next_action(action: Any, return_url: str) -> dict[str, Any] | None:
    """A redirect becomes our redirect_to_url; a native 3DS2 action (fingerprint, challenge)
    can only be completed by Adyen's client SDK and is passed through as it is."""
    if not isinstance(action, dict):
        return None
    if action.get("type") == "redirect" and action.get("url"):
        redirect: dict[str, Any] = {
            "url": action["url"],
            "method": action.get("method") or "GET",
            "return_url": return_url,
        }
        if action.get("data"):
            redirect["data"] = action["data"]  # POST redirects carry form fields (PaReq, MD…)
        return {"type": "redirect_to_url", "redirect_to_url": redirect}
    return {"type": "use_psp_sdk", "psp_sdk": {"psp": "adyen", "action": action}}


def _error_result(response: PSPResponse, operation: Operation) -> PSPResult:
    """Adyen's error object: {"status", "errorCode", "message", "errorType", "pspReference"}.

    The error's pspReference names the failed request for Adyen's support, not a payment: it is
    kept in the message for audit, never taken for the payment's reference (a capture sent to
    it would fail, and an inquiry would take it for a lookup key Adyen cannot answer)."""
    payload = response.payload if isinstance(response.payload, dict) else {}
    error_code = str(payload.get("errorCode") or "")
    message = payload.get("message") or ""
    error_type = payload.get("errorType") or ""
    if payload.get("pspReference"):
        message = f"{message} (Adyen request {payload['pspReference']})".strip()
    psp_reference = ""
    status = response.status_code
    if status < 400:
        return in_doubt_result(
            response, raw_code="unreadable_response", psp_reference=psp_reference
        )
    if status >= 500:
        return server_error_result(
            response,
            raw_code=error_code or error_type,
            raw_message=message,
            psp_reference=psp_reference,
        )
    transient = str(response.headers.get("Transient-Error", "")).lower() == "true"
    if error_code == IDEMPOTENCY_IN_PROGRESS_ERROR or transient:
        return in_doubt_result(
            response,
            raw_code=error_code or "transient_error",
            raw_message=message,
            psp_reference=psp_reference,
        )
    if status == 422 and error_code in CARD_VALIDATION_ERRORS:
        decline_code = CARD_VALIDATION_ERRORS[error_code]
        return PSPResult(
            outcome=Outcome.HARD_DECLINE,
            psp_reference=psp_reference,
            decline_code=decline_code,
            raw_code=error_code,
            raw_message=message,
            http_status=status,
            latency_ms=response.latency_ms,
            captured=False,
            not_charged=True,  # the card number or CVC is invalid: nothing was authorised
        )
    return request_rejected_result(
        response,
        operation,
        raw_code=error_code or error_type,
        raw_message=message,
        psp_reference=psp_reference,
    )


# --- webhook helpers ------------------------------------------------------------------------------


def _notification_items(body: bytes) -> list[dict[str, Any]]:
    """The NotificationRequestItems of a standard notification:
    {"live": "false", "notificationItems": [{"NotificationRequestItem": {...}}]}."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the notification is not valid JSON") from None
    wrappers = data.get("notificationItems") if isinstance(data, dict) else None
    if not isinstance(wrappers, list):
        raise ValueError("the notification has no notificationItems")
    items = []
    for wrapper in wrappers:
        item = wrapper.get("NotificationRequestItem") if isinstance(wrapper, dict) else None
        if not isinstance(item, dict):
            raise ValueError("a notification item is not a NotificationRequestItem")
        items.append(item)
    return items


def _notification_event(item: dict[str, Any]) -> WebhookEvent:
    event_code = item.get("eventCode") or ""
    delivered_success = str(item.get("success", "")).lower()
    success = delivered_success == "true" and event_code not in _FAILURE_EVENTS
    additional = item.get("additionalData") if isinstance(item.get("additionalData"), dict) else {}
    event_type = EVENT_TYPES.get(event_code, "other")
    if event_code == "CANCEL_OR_REFUND":
        refunded = additional.get("modification.action") == "refund"
        event_type = "refund" if refunded else "cancellation"
    amount = item.get("amount") if isinstance(item.get("amount"), dict) else {}
    merchant_reference = item.get("merchantReference") or ""
    reason = item.get("reason") or ""
    declined = event_code == "AUTHORISATION" and not success
    return WebhookEvent(
        # Adyen: pspReference + eventCode (+ success) identify a notification; retries repeat it
        psp_event_id=f"{item.get('pspReference', '')}:{event_code}:{delivered_success}",
        event_type=event_type,
        # modifications name the payment in originalReference, and their own in pspReference
        psp_reference=item.get("originalReference") or item.get("pspReference") or "",
        success=success,
        attempt_id=(merchant_reference or additional.get("metadata.attempt_id", ""))
        if event_code == "AUTHORISATION"
        else "",
        refund_id=merchant_reference if event_type == "refund" else "",
        amount=amount.get("value"),
        currency=str(amount.get("currency") or "").lower(),
        raw_code=reason if declined and reason else event_code,
        decline_code=refusal_decline_code(reason) if declined else "",
        occurred_at=_unix_seconds(item.get("eventDate")),
        dispute=_dispute_notice(item, event_code, additional, reason)
        if event_type == "chargeback"
        else None,
    )


def _dispute_notice(
    item: dict[str, Any], event_code: str, additional: dict[str, Any], reason: str
) -> DisputeNotice:
    """A dispute notification: the dispute is named by its own pspReference (the payment by
    originalReference); disputeStatus, chargebackReasonCode and defensePeriodEndsAt as Adyen
    documents them in additionalData."""
    raw_status = str(additional.get("disputeStatus") or "")
    mapped = dispute_vocabulary.adyen_dispute(event_code, raw_status)
    code = str(additional.get("chargebackReasonCode") or "")
    return DisputeNotice(
        psp_dispute_id=str(item.get("pspReference") or ""),
        raw_status=raw_status,
        raw_event=event_code,
        stage=mapped.stage,
        status=mapped.status,
        reason=dispute_vocabulary.reason_for(code, reason),
        network_reason_code=code,
        evidence_due_by=_unix_seconds(additional.get("defensePeriodEndsAt")),
        funds=mapped.funds,
        informational=event_code == "NOTIFICATION_OF_FRAUD",
    )


def _unix_seconds(value: Any) -> int | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


# --- settlement helpers ---------------------------------------------------------------------------


def _column(name: str) -> str:
    """'Gross Debit (GC)' -> 'gross debit': the currency suffixes vary between report versions."""
    name = name.strip().lower()
    for suffix in (" (gc)", " (nc)", " (sc)"):
        name = name.removesuffix(suffix)
    return name


def _settlement_line(row: dict[str, str]) -> SettlementLine:
    record_type = SETTLEMENT_TYPES.get(row.get("type", "").lower(), "adjustment")
    net_currency = (row.get("net currency") or row.get("gross currency") or "").lower()
    gross_currency = (row.get("gross currency") or net_currency).lower()

    def amount(column: str, currency: str) -> int:
        return minor_units(row.get(column, ""), currency)

    net = amount("net credit", net_currency) - amount("net debit", net_currency)
    fee = sum(amount(column, net_currency) for column in _FEE_COLUMNS)
    has_gross = bool(row.get("gross credit") or row.get("gross debit"))
    if has_gross and gross_currency == net_currency:
        gross = amount("gross credit", gross_currency) - amount("gross debit", gross_currency)
    elif record_type == "fee" and not fee:
        gross, fee = 0, -net  # a fee line carries only the net debit
    else:
        gross = net + fee
    reference = (
        row.get("modification merchant reference") if record_type == "refund" else ""
    ) or row.get("merchant reference", "")
    return SettlementLine(
        psp_reference=row.get("psp reference", ""),
        record_type=record_type,
        gross=gross,
        fee=fee,
        net=net,
        currency=net_currency,
        settled_at=row.get("creation date", "")[:10],
        merchant_reference=reference,
    )
