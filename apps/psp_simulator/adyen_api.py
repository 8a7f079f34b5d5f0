"""The Adyen dialect: `/adyen/<connector>/v71/…`, Checkout API JSON in and out.

Payments answer at once (`Authorised`, `Refused`, `Error`, `RedirectShopper`); modifications
(captures, refunds, cancels, reversals) answer `201 {"status": "received"}` and their result
arrives later as a signed notification webhook, as with real Adyen. Any API version number in the
path is accepted (`/v68/…`, `/v71/…`).

Adyen documents no parameter check for a reused Idempotency-Key: a repeat returns the first
response whatever its body, and so does the simulator.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from apps.psp_simulator import cards, disputes
from apps.psp_simulator.core import Context, Dialect, Execution
from apps.psp_simulator.state import (
    STORE,
    Charge,
    ConnectorState,
    IdempotencyRecord,
    Payment,
    Refund,
    adyen_psp_reference,
    now,
)
from apps.psp_simulator.web import Request, Response, html_response, json_response, redirect
from apps.psp_simulator.webhooks import OutboundEvent

VERSION = r"/v(?P<version>\d+)"


class AdyenDialect(Dialect):
    def authenticate(self, request: Request) -> Response | None:
        if request.header("x-api-key").strip():
            return None
        return _api_error(401, "000", "HTTP Status Response - Unauthorized", "security")

    def error(self, kind: str, context: Context | None, **details: Any) -> Response:
        if kind in ("route_not_found", "method_not_allowed"):
            status = 404 if kind == "route_not_found" else 405
            return _api_error(status, "000", "HTTP Status Response - Not Found", "validation")
        if kind == "unavailable":
            response = _api_error(503, "000", "Service Unavailable", "internal")
            return response.with_header("transient-error", "true")
        if kind == "internal":
            return _api_error(500, "000", "An unexpected error occurred", "internal")
        if kind == "gateway_timeout":
            return _api_error(504, "000", "Gateway Timeout", "internal")
        if kind == "rejected":
            status = details["status"]
            code, message, error_type = _REJECTED[status]
            return _api_error(status, code, message, error_type)
        if kind == "bad_request":
            return _api_error(400, "702", details.get("message", "Unexpected input"), "validation")
        if kind == "idempotency_key_too_long":
            return _api_error(
                422, "000", "Idempotency-Key exceeds the maximum length", "validation"
            )
        if kind == "idempotency_in_flight":
            response = _api_error(
                409, "704", "request already processed or in progress", "validation"
            )
            return response.with_header("transient-error", "true")
        raise ValueError(kind)

    def fingerprint(self, request: Request, path: str) -> str:
        try:
            body = json.dumps(request.json(), sort_keys=True)
        except Exception:
            body = request.body.decode("utf-8", "replace")
        return json.dumps([request.method, path, body])

    def idempotency_mismatch(self, key: str, record: IdempotencyRecord, path: str) -> None:
        return None  # Adyen replays the first response for a key, whatever the new body

    def decorate(self, response: Response, context: Context, replayed: bool) -> Response:
        if context.idempotency_key:
            response.with_header("Idempotency-Key", context.idempotency_key)
        return response


ADYEN = AdyenDialect("adyen")

# Adyen's answers to a request refused before processing (fault mode `rejected`)
_REJECTED = {
    400: ("702", "Unexpected input", "validation"),
    401: ("000", "HTTP Status Response - Unauthorized", "security"),
    403: ("010", "Not allowed", "security"),
    404: ("000", "HTTP Status Response - Not Found", "validation"),
    422: ("702", "Unexpected input", "validation"),
    429: ("000", "Too many requests", "validation"),
}


def _api_error(status: int, code: str, message: str, error_type: str) -> Response:
    return json_response(
        status,
        {
            "status": status,
            "errorCode": code,
            "message": message,
            "errorType": error_type,
            "pspReference": adyen_psp_reference(),
        },
    )


def _validation(code: str, message: str) -> Response:
    return _api_error(422, code, message, "validation")


def _amount(payment_amount: int, currency: str) -> dict[str, Any]:
    return {"currency": currency.upper(), "value": payment_amount}


def _event_date() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _read_amount(body: dict[str, Any], field: str = "amount") -> tuple[int, str] | Response:
    amount = body.get(field)
    if not isinstance(amount, dict) or "value" not in amount:
        return _validation("100", "No amount specified")
    value, currency = amount.get("value"), amount.get("currency")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return _validation("137", "Invalid amount specified")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        return _validation("138", "Unsupported currency specified")
    return value, currency.lower()


def _body(context: Context) -> dict[str, Any] | Response:
    body = context.request.json()
    if not isinstance(body, dict):
        return _api_error(
            400, "702", "Unexpected input: the body must be a JSON object", "validation"
        )
    return body


def _notify(connector: ConnectorState, item: dict[str, Any]) -> None:
    connector.emit(
        OutboundEvent(
            dialect="adyen",
            event_id=f"{item['eventCode']}:{item['pspReference']}:{item['success']}",
            event_type=item["eventCode"],
            payload=item,
        )
    )


def _notification(
    payment: Payment,
    *,
    event_code: str,
    psp_reference: str,
    success: bool,
    amount: int,
    reason: str = "",
    merchant_reference: str | None = None,
    original_reference: str = "",
    additional: dict[str, Any] | None = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "additionalData": dict(additional or {}),
        "amount": _amount(amount, payment.currency),
        "eventCode": event_code,
        "eventDate": _event_date(),
        "merchantAccountCode": payment.merchant_account,
        "merchantReference": payment.reference
        if merchant_reference is None
        else merchant_reference,
        "paymentMethod": cards.ADYEN_BRANDS.get(payment.brand, payment.brand),
        "pspReference": psp_reference,
        "reason": reason,
        "success": "true" if success else "false",
    }
    if original_reference:
        item["originalReference"] = original_reference
    return item


# -- payments -----------------------------------------------------------------------------------


@ADYEN.route("POST", f"{VERSION}/payments", "authorize", mutating=True)
def payments(context: Context, version: str) -> Response | Execution:
    body = _body(context)
    if isinstance(body, Response):
        return body
    amount = _read_amount(body)
    if isinstance(amount, Response):
        return amount
    value, currency = amount
    reference = body.get("reference")
    if not isinstance(reference, str) or not reference:
        return _validation("130", "Required field 'reference' is not provided.")
    merchant_account = body.get("merchantAccount")
    if not isinstance(merchant_account, str) or not merchant_account:
        return _validation("901", "Invalid Merchant Account")
    method = body.get("paymentMethod")
    if not isinstance(method, dict):
        return _validation("000", "Required field 'paymentMethod' is not provided.")
    if method.get("type", "scheme") != "scheme":
        return _validation("905", "Payment details are not supported")
    number = str(method.get("number", "")).replace(" ", "")
    if not number:
        return _validation("101", "Invalid card number")
    try:
        exp_month = int(method.get("expiryMonth", ""))
        exp_year = int(method.get("expiryYear", ""))
    except (TypeError, ValueError):
        return _validation("129", "Expiry Date Invalid")
    if exp_year < 100:
        exp_year += 2000
    cvc = str(method.get("cvc", ""))
    if cvc and not (cvc.isdigit() and 3 <= len(cvc) <= 4):
        return _validation("103", "CVC is not the right length")

    additional = body.get("additionalData") or {}
    delay_hours = body.get("captureDelayHours")
    manual = str(additional.get("manualCapture", "")).lower() == "true" or (
        isinstance(delay_hours, int) and delay_hours > 0
    )
    behaviour = cards.card_for(number)
    connector = context.connector
    delay_s = (
        connector.settings.slow_card_delay_ms / 1000.0
        if behaviour.outcome == cards.SLOW_APPROVE
        else 0.0
    )
    metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}

    def run() -> Response:
        payment = Payment(
            id=adyen_psp_reference(),
            connector=connector.name,
            dialect="adyen",
            amount=value,
            currency=currency,
            capture_method="manual" if manual else "automatic",
            status="processing",
            reference=reference,
            idempotency_key=context.idempotency_key,
            metadata={str(k): str(v) for k, v in metadata.items()},
            return_url=str(body.get("returnUrl", "")),
            merchant_account=merchant_account,
            last4=number[-4:],
            brand=behaviour.brand if behaviour.brand != "unknown" else cards.brand_of(number),
            exp_month=exp_month,
            exp_year=exp_year,
            card_outcome=behaviour.outcome,
            card_number_key=behaviour.number,
        )
        _three_ds_options(payment, body)
        connector.payments[payment.id] = payment

        now = datetime.now(UTC)
        if not 1 <= exp_month <= 12 or (exp_year, exp_month) < (now.year, now.month):
            expired = cards.CARDS_BY_NUMBER["4000000000000069"]
            return _refuse(connector, payment, expired)
        if behaviour.outcome == cards.DECLINE or (
            behaviour.outcome == cards.STEP_UP and not payment.three_ds_requested
        ):
            return _refuse(connector, payment, behaviour)
        if behaviour.outcome == cards.REQUIRES_ACTION or payment.three_ds_requested:
            payment.status = "requires_action"
            payment.three_ds_token = secrets.token_urlsafe(24)
            url = (
                f"{context.request.base_url()}/adyen/{connector.name}/3ds/{payment.id}"
                f"?MD={payment.three_ds_token}"
            )
            return json_response(
                200,
                {
                    "resultCode": "RedirectShopper",
                    "action": {
                        "paymentMethodType": "scheme",
                        "url": url,
                        "method": "GET",
                        "type": "redirect",
                    },
                    "pspReference": payment.id,
                    "merchantReference": payment.reference,
                    "amount": _amount(payment.amount, payment.currency),
                    "paymentMethod": _brand(payment),
                },
            )
        return _authorise(connector, payment)

    return Execution(run, delay_s=delay_s)


def _three_ds_options(payment: Payment, body: dict[str, Any]) -> None:
    """authenticationData.attemptAuthentication "always" asks for 3DS, with
    threeDSRequestData.challengeIndicator "requestChallenge" a challenge; the exemption is
    additionalData.scaExemption, or a merchant-initiated (ContAuth) payment."""
    auth = body.get("authenticationData")
    if isinstance(auth, dict) and auth.get("attemptAuthentication") == "always":
        request = auth.get("threeDSRequestData")
        challenge = isinstance(request, dict) and request.get("challengeIndicator") in (
            "requestChallenge",
            "requestChallengeAsMandate",
        )
        payment.three_ds_requested = "challenge" if challenge else "any"
    additional = body.get("additionalData")
    if isinstance(additional, dict) and isinstance(additional.get("scaExemption"), str):
        payment.sca_exemption = additional["scaExemption"]
    elif body.get("shopperInteraction") == "ContAuth":
        payment.sca_exemption = "ContAuth"


def _brand(payment: Payment) -> dict[str, str]:
    return {"brand": cards.ADYEN_BRANDS.get(payment.brand, payment.brand), "type": "scheme"}


def _new_charge(payment: Payment, status: str, decline_code: str = "") -> Charge:
    connector = STORE.connectors[payment.connector]
    charge = Charge(
        id=payment.id,
        connector=payment.connector,
        dialect="adyen",
        payment_id=payment.id,
        amount=payment.amount,
        currency=payment.currency,
        status=status,
        reference=payment.reference,
        idempotency_key=payment.idempotency_key,
        last4=payment.last4,
        brand=payment.brand,
        exp_month=payment.exp_month,
        exp_year=payment.exp_year,
        decline_code=decline_code,
        three_d_secure=payment.three_ds_requested,
        sca_exemption=payment.sca_exemption,
        authenticated=payment.three_ds_outcome == "succeeded",
    )
    connector.charges[charge.id] = charge
    payment.charge_ids.append(charge.id)
    payment.latest_charge = charge.id
    return charge


def _authorise(connector: ConnectorState, payment: Payment) -> Response:
    charge = _new_charge(payment, "authorized")
    if payment.capture_method == "manual":
        payment.status = "requires_capture"
        payment.amount_capturable = payment.amount
    else:
        payment.status = "succeeded"
        payment.amount_received = payment.amount
        charge.status = "captured"
        charge.amount_captured = payment.amount
        charge.captured_at = now()
        disputes.after_capture(connector, payment)
    auth_code = f"{secrets.randbelow(1_000_000):06d}"
    expiry = f"{payment.exp_month}/{payment.exp_year}"
    result = {
        "additionalData": {
            "authCode": auth_code,
            "cardSummary": payment.last4,
            "expiryDate": expiry,
            "refusalReasonRaw": "AUTHORISED",
        },
        "pspReference": payment.id,
        "resultCode": "Authorised",
        "amount": _amount(payment.amount, payment.currency),
        "merchantReference": payment.reference,
        "paymentMethod": _brand(payment),
    }
    payment.adyen_final = result
    _notify(
        connector,
        _notification(
            payment,
            event_code="AUTHORISATION",
            psp_reference=payment.id,
            success=True,
            amount=payment.amount,
            reason=f"{auth_code}:{payment.last4}:{expiry}",
            additional={"authCode": auth_code, "cardSummary": payment.last4, "expiryDate": expiry},
        )
        | {"operations": ["CANCEL", "CAPTURE", "REFUND"]},
    )
    return json_response(200, result)


def _refuse(connector: ConnectorState, payment: Payment, card: cards.TestCard) -> Response:
    _new_charge(payment, "declined", card.decline_code)
    payment.status = "requires_payment_method"
    result = {
        "additionalData": {
            "refusalReasonRaw": card.raw_response,
            **(
                {"merchantAdviceCode": f"{card.network_advice_code}: Do Not Try Again"}
                if card.network_advice_code
                else {}
            ),
        },
        "pspReference": payment.id,
        "refusalReason": card.adyen_refusal_reason,
        "refusalReasonCode": card.adyen_refusal_code,
        "resultCode": card.adyen_result_code,
        "amount": _amount(payment.amount, payment.currency),
        "merchantReference": payment.reference,
        "paymentMethod": _brand(payment),
    }
    payment.adyen_final = result
    _notify(
        connector,
        _notification(
            payment,
            event_code="AUTHORISATION",
            psp_reference=payment.id,
            success=False,
            amount=payment.amount,
            reason=card.adyen_refusal_reason,
            additional={"refusalReasonRaw": card.raw_response},
        ),
    )
    return json_response(200, result)


THREE_DS_FAILED = cards.TestCard(
    number="",
    brand="visa",
    outcome=cards.DECLINE,
    description="3-D Secure authentication failed",
    decline_code="authentication_required",
    adyen_refusal_code="11",
    adyen_refusal_reason="3D Not Authenticated",
    raw_response="3D Not Authenticated",
)


@ADYEN.route("POST", f"{VERSION}/payments/details", "authorize", mutating=True)
def payment_details(context: Context, version: str) -> Response | Execution:
    body = _body(context)
    if isinstance(body, Response):
        return body
    details = body.get("details")
    redirect_result = details.get("redirectResult") if isinstance(details, dict) else None
    if not isinstance(redirect_result, str) or not redirect_result:
        return _validation("14_018", "Invalid payload provided: details.redirectResult missing")
    connector = context.connector

    def run() -> Response:
        payment = next(
            (
                p
                for p in connector.payments.values()
                if p.dialect == "adyen" and p.redirect_result == redirect_result
            ),
            None,
        )
        if payment is None:
            return _validation("14_018", "Invalid payload provided: unknown redirectResult")
        if payment.adyen_final is not None:
            return json_response(200, payment.adyen_final)
        if payment.three_ds_outcome == "succeeded":
            return _authorise(connector, payment)
        return _refuse(connector, payment, THREE_DS_FAILED)

    return Execution(run)


@ADYEN.route("GET", r"/3ds/(?P<psp_reference>[A-Za-z0-9]+)", "authorize", public=True)
def three_ds_page(context: Context, psp_reference: str) -> Response | Execution:
    request = context.request
    token = request.query_value("MD")
    outcome = request.query_value("outcome")
    connector = context.connector
    if outcome not in ("succeeded", "failed"):
        base = f"/adyen/{connector.name}/3ds/{psp_reference}?MD={token}"
        return html_response(
            200,
            "<!doctype html><title>3-D Secure (simulator)</title>"
            "<h1>3-D Secure authentication</h1>"
            f'<p><a href="{base}&outcome=succeeded">Complete authentication</a></p>'
            f'<p><a href="{base}&outcome=failed">Fail authentication</a></p>',
        )

    def run() -> Response:
        payment = connector.payments.get(psp_reference)
        if payment is None or payment.dialect != "adyen" or payment.three_ds_token != token:
            return html_response(404, "<h1>Unknown authentication</h1>")
        if not payment.redirect_result:
            payment.three_ds_outcome = outcome
            payment.redirect_result = secrets.token_urlsafe(32)
        if payment.return_url:
            separator = "&" if "?" in payment.return_url else "?"
            query = urlencode({"redirectResult": payment.redirect_result})
            return redirect(f"{payment.return_url}{separator}{query}")
        return html_response(
            200,
            f"<h1>Authentication {payment.three_ds_outcome}</h1>"
            f"<p>redirectResult: <code>{payment.redirect_result}</code></p>",
        )

    return Execution(run)


# -- modifications ------------------------------------------------------------------------------


def _modification_request(
    context: Context, *, needs_amount: bool
) -> tuple[dict[str, Any], tuple[int, str] | None] | Response:
    body = _body(context)
    if isinstance(body, Response):
        return body
    merchant_account = body.get("merchantAccount")
    if not isinstance(merchant_account, str) or not merchant_account:
        return _validation("901", "Invalid Merchant Account")
    if not needs_amount:
        return body, None
    amount = _read_amount(body)
    if isinstance(amount, Response):
        return amount
    return body, amount


def _unknown_payment(psp_reference: str) -> Response:
    message = f"Original pspReference {psp_reference} is invalid for this environment!"
    return _validation("167", message)


def _received(
    body: dict[str, Any], payment_reference: str, modification_reference: str, **extra: Any
) -> Response:
    payload = {
        "merchantAccount": body["merchantAccount"],
        "paymentPspReference": payment_reference,
        "pspReference": modification_reference,
        "reference": body.get("reference", ""),
        "status": "received",
        **extra,
    }
    return json_response(201, payload)


@ADYEN.route(
    "POST", f"{VERSION}/payments/(?P<psp_reference>[A-Za-z0-9]+)/captures", "capture", mutating=True
)
def capture(context: Context, version: str, psp_reference: str) -> Response | Execution:
    parsed = _modification_request(context, needs_amount=True)
    if isinstance(parsed, Response):
        return parsed
    body, (value, currency) = parsed
    connector = context.connector

    def run() -> Response:
        payment = connector.payments.get(psp_reference)
        if payment is None or payment.dialect != "adyen":
            return _unknown_payment(psp_reference)
        modification = adyen_psp_reference()
        reason = ""
        if payment.status != "requires_capture":
            reason = f"Payment cannot be captured in state {_adyen_state(payment)}"
        elif currency != payment.currency:
            reason = "Currency mismatch"
        elif value > payment.amount_capturable:
            reason = "Capture amount exceeds authorised amount"
        elif payment.card_outcome == cards.CAPTURE_FAILS:
            reason = "Authorisation expired"
        success = not reason
        if success:
            charge = connector.charges[payment.latest_charge]
            payment.amount_received = value
            payment.amount_capturable = 0  # the rest of the authorisation is released
            payment.status = "succeeded"
            charge.status = "captured"
            charge.amount_captured = value
            charge.captured_at = now()
            disputes.after_capture(connector, payment)
        connector.modifications[modification] = {
            "kind": "capture",
            "payment": payment.id,
            "amount": value,
            "success": success,
        }
        _notify(
            connector,
            _notification(
                payment,
                event_code="CAPTURE",
                psp_reference=modification,
                success=success,
                amount=value,
                reason=reason,
                merchant_reference=body.get("reference") or payment.reference,
                original_reference=payment.id,
            ),
        )
        return _received(body, payment.id, modification, amount=_amount(value, currency))

    return Execution(run)


@ADYEN.route(
    "POST", f"{VERSION}/payments/(?P<psp_reference>[A-Za-z0-9]+)/refunds", "refund", mutating=True
)
def refund(context: Context, version: str, psp_reference: str) -> Response | Execution:
    parsed = _modification_request(context, needs_amount=True)
    if isinstance(parsed, Response):
        return parsed
    body, (value, currency) = parsed
    connector = context.connector

    def run() -> Response:
        payment = connector.payments.get(psp_reference)
        if payment is None or payment.dialect != "adyen":
            return _unknown_payment(psp_reference)
        modification = adyen_psp_reference()
        _apply_refund(connector, payment, body, modification, value, currency, "REFUND")
        extra = {"amount": _amount(value, currency)}
        if body.get("merchantRefundReason"):
            extra["merchantRefundReason"] = body["merchantRefundReason"]
        return _received(body, payment.id, modification, **extra)

    return Execution(run)


def _apply_refund(
    connector: ConnectorState,
    payment: Payment,
    body: dict[str, Any],
    modification: str,
    value: int,
    currency: str,
    event_code: str,
    additional: dict[str, Any] | None = None,
) -> None:
    reason = ""
    if payment.status != "succeeded":
        reason = f"Payment cannot be refunded in state {_adyen_state(payment)}"
    elif currency != payment.currency:
        reason = "Currency mismatch"
    elif value > payment.amount_received - payment.amount_refunded:
        reason = "Refund amount exceeds captured amount"
    elif payment.card_outcome == cards.REFUND_FAILS:
        reason = "Refund failed at the issuer"
    success = not reason
    refund = Refund(
        id=modification,
        connector=connector.name,
        dialect="adyen",
        payment_id=payment.id,
        charge_id=payment.latest_charge or payment.id,
        amount=value,
        currency=currency,
        status="succeeded" if success else "failed",
        reason=body.get("merchantRefundReason"),
        reference=str(body.get("reference", "")),
        failure_reason=reason or None,
    )
    connector.refunds[refund.id] = refund
    payment.refund_ids.append(refund.id)
    if success:
        payment.amount_refunded += value
        connector.charges[payment.latest_charge].amount_refunded += value
    _notify(
        connector,
        _notification(
            payment,
            event_code=event_code,
            psp_reference=modification,
            success=success,
            amount=value,
            reason=reason,
            merchant_reference=body.get("reference") or payment.reference,
            original_reference=payment.id,
            additional=additional,
        ),
    )


def _apply_cancel(
    connector: ConnectorState,
    payment: Payment,
    body: dict[str, Any],
    modification: str,
    event_code: str,
    additional: dict[str, Any] | None = None,
) -> None:
    cancellable = payment.status in ("requires_capture", "requires_action")
    reason = "" if cancellable else f"Payment cannot be cancelled in state {_adyen_state(payment)}"
    if cancellable:
        payment.status = "canceled"
        payment.amount_capturable = 0
        if payment.latest_charge:
            connector.charges[payment.latest_charge].status = "canceled"
    _notify(
        connector,
        _notification(
            payment,
            event_code=event_code,
            psp_reference=modification,
            success=cancellable,
            amount=payment.amount,
            reason=reason,
            merchant_reference=body.get("reference") or payment.reference,
            original_reference=payment.id,
            additional=additional,
        ),
    )


@ADYEN.route(
    "POST", f"{VERSION}/payments/(?P<psp_reference>[A-Za-z0-9]+)/cancels", "cancel", mutating=True
)
def cancel(context: Context, version: str, psp_reference: str) -> Response | Execution:
    parsed = _modification_request(context, needs_amount=False)
    if isinstance(parsed, Response):
        return parsed
    body, _ = parsed
    connector = context.connector

    def run() -> Response:
        payment = connector.payments.get(psp_reference)
        if payment is None or payment.dialect != "adyen":
            return _unknown_payment(psp_reference)
        modification = adyen_psp_reference()
        _apply_cancel(connector, payment, body, modification, "CANCELLATION")
        return _received(body, payment.id, modification)

    return Execution(run)


@ADYEN.route(
    "POST", f"{VERSION}/payments/(?P<psp_reference>[A-Za-z0-9]+)/reversals", "refund", mutating=True
)
def reversal(context: Context, version: str, psp_reference: str) -> Response | Execution:
    """Cancel if not captured yet, refund in full otherwise (Adyen's CANCEL_OR_REFUND)."""
    parsed = _modification_request(context, needs_amount=False)
    if isinstance(parsed, Response):
        return parsed
    body, _ = parsed
    connector = context.connector

    def run() -> Response:
        payment = connector.payments.get(psp_reference)
        if payment is None or payment.dialect != "adyen":
            return _unknown_payment(psp_reference)
        modification = adyen_psp_reference()
        if payment.status == "succeeded":
            remaining = payment.amount_received - payment.amount_refunded
            _apply_refund(
                connector,
                payment,
                body,
                modification,
                remaining,
                payment.currency,
                "CANCEL_OR_REFUND",
                {"modification.action": "refund"},
            )
        else:
            _apply_cancel(
                connector,
                payment,
                body,
                modification,
                "CANCEL_OR_REFUND",
                {"modification.action": "cancel"},
            )
        return _received(body, payment.id, modification)

    return Execution(run)


@ADYEN.route("POST", f"{VERSION}/cancels", "cancel", mutating=True)
def technical_cancel(context: Context, version: str) -> Response | Execution:
    """Cancel by our own payment reference: the way out when the /payments answer was lost."""
    parsed = _modification_request(context, needs_amount=False)
    if isinstance(parsed, Response):
        return parsed
    body, _ = parsed
    payment_reference = body.get("paymentReference")
    if not isinstance(payment_reference, str) or not payment_reference:
        return _validation("000", "Required field 'paymentReference' is not provided.")
    connector = context.connector

    def run() -> Response:
        modification = adyen_psp_reference()
        matches = [
            p
            for p in connector.payments.values()
            if p.dialect == "adyen" and p.reference == payment_reference
        ]
        for payment in matches:
            _apply_cancel(connector, payment, body, modification, "TECHNICAL_CANCEL")
        return json_response(
            201,
            {
                "merchantAccount": body["merchantAccount"],
                "paymentReference": payment_reference,
                "pspReference": modification,
                "reference": body.get("reference", ""),
                "status": "received",
            },
        )

    return Execution(run)


def _adyen_state(payment: Payment) -> str:
    return {
        "requires_capture": "Authorised",
        "succeeded": "Captured",
        "canceled": "Cancelled",
        "requires_payment_method": "Refused",
        "requires_action": "RedirectShopper",
    }.get(payment.status, payment.status)


# -- dispute service (https://docs.adyen.com/api-explorer/disputes) -------------------------------

DISPUTE_SERVICE = r"/ca/services/DisputeService/v(?P<version>\d+)"


def _dispute_result(success: bool, message: str = "") -> Response:
    result: dict[str, Any] = {"success": success}
    if message:
        result["errorMessage"] = message
    return json_response(200, {"disputeServiceResult": result})


def _dispute_request(context: Context):
    body = _body(context)
    if isinstance(body, Response):
        return body, None
    reference = body.get("disputePspReference")
    dispute = context.connector.disputes.get(reference) if isinstance(reference, str) else None
    if dispute is None or dispute.dialect != "adyen":
        return _dispute_result(False, "Dispute not found"), None
    return body, dispute


@ADYEN.route("POST", f"{DISPUTE_SERVICE}/supplyDefenseDocument", "dispute", mutating=True)
def dispute_supply_document(context: Context, version: str) -> Response | Execution:
    def run() -> Response:
        body, dispute = _dispute_request(context)
        if dispute is None:
            return body
        documents = body.get("defenseDocuments")
        if not isinstance(documents, list) or not documents:
            return _dispute_result(False, "No defense documents")
        for document in documents:
            if not isinstance(document, dict) or not isinstance(document.get("content"), str):
                return _dispute_result(False, "A defense document has no content")
        try:
            disputes.supply_document(dispute, documents)
        except disputes.DisputeError as exc:
            return _dispute_result(False, str(exc))
        return _dispute_result(True)

    return Execution(run)


@ADYEN.route("POST", f"{DISPUTE_SERVICE}/defendDispute", "dispute", mutating=True)
def dispute_defend(context: Context, version: str) -> Response | Execution:
    def run() -> Response:
        body, dispute = _dispute_request(context)
        if dispute is None:
            return body
        if not body.get("defenseReasonCode"):
            return _dispute_result(False, "No defense reason code")
        try:
            disputes.submit_evidence(context.connector, dispute, {}, True)
        except disputes.DisputeError as exc:
            return _dispute_result(False, str(exc))
        return _dispute_result(True)

    return Execution(run)


@ADYEN.route("POST", f"{DISPUTE_SERVICE}/acceptDispute", "dispute", mutating=True)
def dispute_accept(context: Context, version: str) -> Response | Execution:
    def run() -> Response:
        body, dispute = _dispute_request(context)
        if dispute is None:
            return body
        try:
            disputes.accept(context.connector, dispute)
        except disputes.DisputeError as exc:
            return _dispute_result(False, str(exc))
        return _dispute_result(True)

    return Execution(run)
