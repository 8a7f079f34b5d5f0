"""The Stripe dialect: `/stripe/<connector>/v1/…`, form-encoded in, Stripe JSON objects out.

Covers what our Stripe adapter uses: PaymentIntents (create+confirm, retrieve, search, capture,
cancel), Refunds, Charges (read) and Payouts, with Stripe's error objects, idempotency rules,
3-D Secure `next_action` and signed webhook events. Unknown parameters are accepted and ignored
(Stripe would reject them), so adapters can send what real Stripe accepts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from apps.psp_simulator import cards, disputes
from apps.psp_simulator.core import Context, Dialect, Execution
from apps.psp_simulator.state import (
    SCHEDULER,
    STORE,
    Charge,
    IdempotencyRecord,
    Payment,
    Payout,
    Refund,
    now,
    stripe_id,
)
from apps.psp_simulator.web import Request, Response, html_response, json_response, redirect
from apps.psp_simulator.webhooks import STRIPE_API_VERSION, OutboundEvent

DOCS = "https://stripe.com/docs/error-codes"
CANCELABLE = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
)
CANCELLATION_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")

# Stripe's test PaymentMethod ids, for callers that send `payment_method=pm_card_…`
TEST_PAYMENT_METHODS = {
    "pm_card_visa": "4242424242424242",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_amex": "378282246310005",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
    "pm_card_chargeDeclinedProcessingError": "4000000000000119",
    "pm_card_chargeDeclinedFraudulent": "4100000000000019",
    "pm_card_authenticationRequired": "4000002500003155",
    "pm_card_threeDSecure2Required": "4000000000003220",
}


class StripeDialect(Dialect):
    def authenticate(self, request: Request) -> Response | None:
        header = request.header("authorization")
        key = ""
        if header[:7].lower() == "bearer ":
            key = header[7:].strip()
        elif header[:6].lower() == "basic ":
            try:
                key = base64.b64decode(header[6:].strip()).decode().split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        if not key:
            return _error(
                401,
                "invalid_request_error",
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details.",
            )
        if not key.startswith("sk_"):
            masked = f"{key[:8]}{'*' * max(0, len(key) - 12)}{key[-4:]}" if len(key) > 12 else key
            return _error(401, "invalid_request_error", f"Invalid API Key provided: {masked}")
        return None

    def error(self, kind: str, context: Context | None, **details: Any) -> Response:
        request = context.request if context else None
        if kind in ("route_not_found", "method_not_allowed"):
            method = request.method if request else "GET"
            path = context.path if context else ""
            return _error(
                404,
                "invalid_request_error",
                f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
                "or we can help at https://support.stripe.com/.",
            )
        if kind == "unavailable":
            response = _error(
                503,
                "api_error",
                "The Stripe API is temporarily unavailable. Please try again later.",
            )
            return response.with_header("Stripe-Should-Retry", "true")
        if kind == "internal":
            return _error(
                500,
                "api_error",
                "An unknown error occurred while processing your request. Please try again.",
            )
        if kind == "gateway_timeout":
            return _error(504, "api_error", "The request timed out.")
        if kind == "rejected":
            return _rejected(details["status"], context)
        if kind == "bad_request":
            return _error(400, "invalid_request_error", details.get("message", "Bad request."))
        if kind == "idempotency_key_too_long":
            return _error(
                400,
                "invalid_request_error",
                "Invalid Idempotency-Key: keys can be at most 255 characters long.",
            )
        if kind == "idempotency_in_flight":
            key = context.idempotency_key if context else ""
            response = _error(
                409,
                "invalid_request_error",
                "There is currently another in-progress request using this Idempotency Key "
                "(that probably means you submitted twice, and the other request is still going "
                f"through): {key}. Please try again later.",
                code="idempotency_key_in_use",
            )
            return response.with_header("Stripe-Should-Retry", "true")
        raise ValueError(kind)

    def fingerprint(self, request: Request, path: str) -> str:
        pairs = sorted(request.form_pairs())
        return json.dumps([request.method, path, pairs])

    def idempotency_mismatch(self, key: str, record: IdempotencyRecord, path: str) -> Response:
        if record.path != path:
            message = (
                "Keys for idempotent requests can only be used for the same endpoint they were "
                f"first used for ('{record.path}' vs '{path}'). Try using a key other than "
                f"'{key}' if you meant to execute a different request."
            )
        else:
            message = (
                "Keys for idempotent requests can only be used with the same parameters they were "
                f"first used with. Try using a key other than '{key}' if you meant to execute a "
                "different request."
            )
        return _error(400, "idempotency_error", message)

    def decorate(self, response: Response, context: Context, replayed: bool) -> Response:
        original = next((v for k, v in response.headers if k == "Request-Id"), "")
        response.with_header("Request-Id", context.request_id)
        response.with_header("Stripe-Version", STRIPE_API_VERSION)
        if context.idempotency_key:
            response.with_header("Idempotency-Key", context.idempotency_key)
        if replayed:
            response.with_header("Idempotent-Replayed", "true")
            if original:
                response.with_header("Original-Request", original)
        return response


STRIPE = StripeDialect("stripe")


# -- errors and parameters ---------------------------------------------------------------------


def _error(
    status: int,
    error_type: str,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    **extra: Any,
) -> Response:
    error: dict[str, Any] = {"message": message, "type": error_type}
    if code:
        error["code"] = code
        error["doc_url"] = f"{DOCS}#{code.replace('_', '-')}"
    if param:
        error["param"] = param
    error.update({k: v for k, v in extra.items() if v is not None})
    return json_response(status, {"error": error})


def _missing(param: str) -> Response:
    return _error(
        400,
        "invalid_request_error",
        f"Missing required param: {param}.",
        code="parameter_missing",
        param=param,
    )


def _no_such(kind: str, object_id: str, param: str = "id") -> Response:
    return _error(
        404,
        "invalid_request_error",
        f"No such {kind}: '{object_id}'",
        code="resource_missing",
        param=param,
    )


class ParamError(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _int_param(form: dict[str, Any], name: str, *, required: bool, minimum: int = 1) -> int | None:
    raw = form.get(name)
    if raw is None or raw == "":
        if required:
            raise ParamError(_missing(name))
        return None
    if not isinstance(raw, str) or not re.fullmatch(r"-?\d+", raw):
        raise ParamError(
            _error(
                400,
                "invalid_request_error",
                f"Invalid integer: {raw}",
                code="parameter_invalid_integer",
                param=name,
            )
        )
    value = int(raw)
    if value < minimum:
        raise ParamError(
            _error(
                400,
                "invalid_request_error",
                f"This value must be greater than or equal to {minimum}.",
                code="parameter_invalid_integer",
                param=name,
            )
        )
    return value


def _metadata(form: dict[str, Any]) -> dict[str, str]:
    metadata = form.get("metadata", {})
    if metadata == "":
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ParamError(
            _error(
                400,
                "invalid_request_error",
                "Invalid object",
                code="parameter_invalid_empty",
                param="metadata",
            )
        )
    return dict(metadata)


def _bool(value: Any) -> bool:
    return str(value).lower() in ("true", "1", "yes")


@dataclass(frozen=True)
class CardInput:
    number: str
    exp_month: int
    exp_year: int
    cvc: str

    @property
    def last4(self) -> str:
        return self.number[-4:]


def _card_input(form: dict[str, Any]) -> CardInput | None:
    """The card from `payment_method_data[card][…]` or a `pm_card_…` test PaymentMethod id."""
    pm_id = form.get("payment_method")
    if isinstance(pm_id, str) and pm_id:
        number = TEST_PAYMENT_METHODS.get(pm_id)
        if number is None:
            raise ParamError(_no_such("PaymentMethod", pm_id, "payment_method"))
        return CardInput(number, 12, datetime.now(UTC).year + 3, "123")
    data = form.get("payment_method_data")
    if data is None:
        return None
    if not isinstance(data, dict) or data.get("type") != "card":
        raise ParamError(
            _error(
                400,
                "invalid_request_error",
                "payment_method_data[type] must be 'card' on this simulator.",
                code="parameter_invalid_empty",
                param="payment_method_data[type]",
            )
        )
    card = data.get("card")
    if not isinstance(card, dict) or not card.get("number"):
        raise ParamError(_missing("payment_method_data[card][number]"))
    for part in ("exp_month", "exp_year"):
        if not str(card.get(part, "")).isdigit():
            raise ParamError(_missing(f"payment_method_data[card][{part}]"))
    exp_year = int(card["exp_year"])
    if exp_year < 100:
        exp_year += 2000
    number = str(card["number"]).replace(" ", "")
    return CardInput(number, int(card["exp_month"]), exp_year, str(card.get("cvc", "")))


def _expiry_problem(card: CardInput) -> tuple[str, str, str] | None:
    """Stripe's checks on the card data itself: (code, message, param) or None."""
    if not 1 <= card.exp_month <= 12:
        return "invalid_expiry_month", "Your card's expiration month is invalid.", "exp_month"
    today = datetime.now(UTC)
    if (card.exp_year, card.exp_month) < (today.year, today.month):
        return "invalid_expiry_year", "Your card's expiration year is invalid.", "exp_year"
    if card.cvc and not re.fullmatch(r"\d{3,4}", card.cvc):
        return "invalid_cvc", "Your card's security code is invalid.", "cvc"
    return None


# -- object rendering ---------------------------------------------------------------------------


def _client_secret(payment: Payment) -> str:
    digest = hashlib.sha256(payment.id.encode()).hexdigest()[:24]
    return f"{payment.id}_secret_{digest}"


def render_payment_intent(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.id,
        "object": "payment_intent",
        "amount": payment.amount,
        "amount_capturable": payment.amount_capturable,
        "amount_details": {"tip": {}},
        "amount_received": payment.amount_received,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": payment.canceled_at,
        "cancellation_reason": payment.cancellation_reason,
        "capture_method": payment.capture_method,
        "client_secret": _client_secret(payment),
        "confirmation_method": "automatic",
        "created": payment.created,
        "currency": payment.currency,
        "customer": None,
        "description": payment.description or None,
        "last_payment_error": payment.last_payment_error,
        "latest_charge": payment.latest_charge,
        "livemode": False,
        "metadata": payment.metadata,
        "next_action": payment.next_action,
        "on_behalf_of": None,
        "payment_method": payment.payment_method_id or None,
        "payment_method_options": {
            "card": {"request_three_d_secure": "automatic", "capture_method": None}
        },
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": payment.receipt_email or None,
        "setup_future_usage": None,
        "shipping": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": payment.status,
        "transfer_data": None,
        "transfer_group": None,
    }


def _payment_method(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.payment_method_id,
        "object": "payment_method",
        "type": "card",
        "card": {
            "brand": payment.brand,
            "last4": payment.last4,
            "exp_month": payment.exp_month,
            "exp_year": payment.exp_year,
            "funding": "credit",
            "country": "US",
        },
        "created": payment.created,
        "livemode": False,
        "metadata": {},
    }


def _outcome(charge: Charge) -> dict[str, Any]:
    if charge.status != "declined":
        return {
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "risk_score": 20,
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
    if charge.decline_code == "fraudulent":
        return {
            "network_status": "not_sent_to_network",
            "reason": "highest_risk_level",
            "risk_level": "highest",
            "risk_score": 95,
            "seller_message": "Stripe blocked this payment as too risky.",
            "type": "blocked",
        }
    return {
        "network_status": "declined_by_network",
        "reason": charge.decline_code,
        "risk_level": "normal",
        "risk_score": 20,
        "seller_message": "The bank did not return any further details with this decline.",
        "type": "issuer_declined",
    }


def render_charge(charge: Charge, payment: Payment) -> dict[str, Any]:
    connector = STORE.connectors.get(charge.connector)
    refunds = [
        render_refund(connector.refunds[r])
        for r in payment.refund_ids
        if connector is not None and r in connector.refunds
    ]
    declined = charge.status == "declined"
    return {
        "id": charge.id,
        "object": "charge",
        "amount": charge.amount,
        "amount_captured": charge.amount_captured,
        "amount_refunded": charge.amount_refunded,
        "balance_transaction": None if declined else f"txn_{charge.id[3:]}",
        "captured": charge.status == "captured",
        "created": charge.created,
        "currency": charge.currency,
        "description": payment.description or None,
        "failure_code": (payment.last_payment_error or {}).get("code") if declined else None,
        "failure_message": (payment.last_payment_error or {}).get("message") if declined else None,
        "livemode": False,
        "metadata": payment.metadata,
        "outcome": _outcome(charge),
        "paid": not declined,
        "payment_intent": payment.id,
        "payment_method": payment.payment_method_id,
        "payment_method_details": {
            "type": "card",
            "card": {
                "brand": charge.brand,
                "last4": charge.last4,
                "exp_month": charge.exp_month,
                "exp_year": charge.exp_year,
                "funding": "credit",
                "network": charge.brand,
                "checks": {"cvc_check": "pass"},
            },
        },
        "receipt_email": payment.receipt_email or None,
        "refunded": charge.amount_captured > 0 and charge.amount_refunded >= charge.amount_captured,
        "refunds": {
            "object": "list",
            "data": refunds,
            "has_more": False,
            "total_count": len(refunds),
            "url": f"/v1/charges/{charge.id}/refunds",
        },
        "status": "failed" if declined else "succeeded",
    }


def render_refund(refund: Refund) -> dict[str, Any]:
    data = {
        "id": refund.id,
        "object": "refund",
        "amount": refund.amount,
        "balance_transaction": None if refund.status == "failed" else f"txn_{refund.id[3:]}",
        "charge": refund.charge_id,
        "created": refund.created,
        "currency": refund.currency,
        "metadata": refund.metadata,
        "payment_intent": refund.payment_id,
        "reason": refund.reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": refund.status,
        "transfer_reversal": None,
    }
    if refund.status == "failed":
        data["failure_reason"] = refund.failure_reason
        data["failure_balance_transaction"] = f"txn_{refund.id[3:]}f"
    return data


def render_payout(payout: Payout) -> dict[str, Any]:
    return {
        "id": payout.id,
        "object": "payout",
        "amount": payout.amount,
        "arrival_date": payout.arrival_date,
        "automatic": False,
        "balance_transaction": f"txn_{payout.id[3:]}",
        "created": payout.created,
        "currency": payout.currency,
        "description": payout.description,
        "destination": payout.destination,
        "failure_balance_transaction": None,
        "failure_code": payout.failure_code,
        "failure_message": payout.failure_message,
        "livemode": False,
        "metadata": payout.metadata,
        "method": "standard",
        "source_type": "card",
        "statement_descriptor": None,
        "status": payout.status,
        "type": "bank_account",
    }


def _emit(context: Context | None, connector, event_type: str, obj: dict[str, Any]) -> None:
    connector.emit(
        OutboundEvent(
            dialect="stripe",
            event_id=(event_id := stripe_id("evt")),
            event_type=event_type,
            payload={
                "id": event_id,
                "object": "event",
                "api_version": STRIPE_API_VERSION,
                "created": now(),
                "data": {"object": obj},
                "livemode": False,
                "pending_webhooks": 1,
                "request": {
                    "id": context.request_id if context else None,
                    "idempotency_key": (context.idempotency_key or None) if context else None,
                },
                "type": event_type,
            },
        )
    )


def _ok(payload: dict[str, Any], status: int = 200) -> Response:
    return json_response(status, payload)


# -- payment intents ----------------------------------------------------------------------------


@STRIPE.route("POST", r"/v1/payment_intents", "authorize", mutating=True)
def payment_intent_create(context: Context) -> Response | Execution:
    try:
        form = context.request.form()
        amount = _int_param(form, "amount", required=True)
        currency = form.get("currency")
        if not currency:
            return _missing("currency")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
            return _error(
                400,
                "invalid_request_error",
                f"Invalid currency: {currency}.",
                code="parameter_invalid_string",
                param="currency",
            )
        capture_method = form.get("capture_method", "automatic")
        if capture_method not in ("automatic", "automatic_async", "manual"):
            return _error(
                400,
                "invalid_request_error",
                "Invalid capture_method: must be one of automatic, automatic_async, or manual",
                code="parameter_invalid_string",
                param="capture_method",
            )
        metadata = _metadata(form)
        card = _card_input(form)
    except ParamError as exc:
        return exc.response
    confirm = _bool(form.get("confirm", "false"))
    if confirm and card is None:
        return _error(
            400,
            "invalid_request_error",
            "You cannot confirm this PaymentIntent because it's missing a payment method. "
            "Update it with a payment method and then confirm it again.",
            code="payment_intent_unexpected_state",
        )
    connector = context.connector

    def run() -> Response:
        payment = Payment(
            id=stripe_id("pi"),
            connector=connector.name,
            dialect="stripe",
            amount=amount,
            currency=currency.lower(),
            capture_method="manual" if capture_method == "manual" else "automatic",
            status="requires_confirmation" if card else "requires_payment_method",
            reference=metadata.get("attempt_id", ""),
            idempotency_key=context.idempotency_key,
            metadata=metadata,
            description=str(form.get("description", "")),
            receipt_email=str(form.get("receipt_email", "")),
            return_url=str(form.get("return_url", "")),
        )
        _three_ds_options(payment, form)
        connector.payments[payment.id] = payment
        if confirm and card is not None:
            return _confirm(context, payment, card, off_session=_bool(form.get("off_session")))
        return _ok(render_payment_intent(payment))

    return Execution(run, delay_s=_processing_delay(connector, card if confirm else None))


@STRIPE.route(
    "POST", r"/v1/payment_intents/(?P<intent_id>[^/]+)/confirm", "authorize", mutating=True
)
def payment_intent_confirm(context: Context, intent_id: str) -> Response | Execution:
    try:
        form = context.request.form()
        card = _card_input(form)
    except ParamError as exc:
        return exc.response
    connector = context.connector

    def run() -> Response:
        payment = connector.payments.get(intent_id)
        if payment is None or payment.dialect != "stripe":
            return _no_such("payment_intent", intent_id, "intent")
        if payment.status not in ("requires_payment_method", "requires_confirmation"):
            return _unexpected_state(
                payment, "confirmed", ("requires_payment_method", "requires_confirmation")
            )
        chosen = card
        if chosen is None:
            return _error(
                400,
                "invalid_request_error",
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
            )
        if form.get("return_url"):
            payment.return_url = str(form["return_url"])
        _three_ds_options(payment, form)
        return _confirm(context, payment, chosen, off_session=_bool(form.get("off_session")))

    return Execution(run, delay_s=_processing_delay(connector, card))


def _three_ds_options(payment: Payment, form: dict[str, Any]) -> None:
    """payment_method_options[card][request_three_d_secure] (any | challenge ask for 3DS;
    automatic leaves it to the issuer) and [three_d_secure][exemption_indicator]."""
    options = form.get("payment_method_options")
    card = options.get("card") if isinstance(options, dict) else None
    if not isinstance(card, dict):
        return
    requested = card.get("request_three_d_secure")
    if requested in ("any", "challenge"):
        payment.three_ds_requested = requested
    three_ds = card.get("three_d_secure")
    if isinstance(three_ds, dict) and isinstance(three_ds.get("exemption_indicator"), str):
        payment.sca_exemption = three_ds["exemption_indicator"]


def _processing_delay(connector, card: CardInput | None) -> float:
    if card is None:
        return 0.0
    if cards.card_for(card.number).outcome == cards.SLOW_APPROVE:
        return connector.settings.slow_card_delay_ms / 1000.0
    return 0.0


def _confirm(context: Context, payment: Payment, card: CardInput, *, off_session: bool) -> Response:
    """Send the card to the simulated issuer and apply its answer (store lock held)."""
    connector = context.connector
    behaviour = cards.card_for(card.number)
    payment.payment_method_id = stripe_id("pm")
    payment.last4 = card.last4
    payment.brand = behaviour.brand if behaviour.brand != "unknown" else cards.brand_of(card.number)
    payment.exp_month, payment.exp_year = card.exp_month, card.exp_year
    payment.card_outcome = behaviour.outcome
    payment.card_number_key = behaviour.number
    payment.last_payment_error = None
    payment.next_action = None

    problem = _expiry_problem(card)
    if problem is not None:
        code, message, param = problem
        return _decline(context, payment, code, message, param=param, decline_code=None)
    if behaviour.outcome == cards.DECLINE:
        # Stripe puts the issuer's reason in decline_code only for `card_declined` errors
        issuer_declined = behaviour.stripe_code == "card_declined"
        return _decline(
            context,
            payment,
            behaviour.stripe_code,
            behaviour.stripe_message,
            param=behaviour.stripe_param or None,
            decline_code=behaviour.decline_code if issuer_declined else None,
            advice_code=behaviour.advice_code or None,
            network_advice_code=behaviour.network_advice_code or None,
        )
    if behaviour.outcome == cards.STEP_UP and not payment.three_ds_requested:
        return _decline(
            context,
            payment,
            "card_declined",
            "Your card was declined. This transaction requires authentication.",
            decline_code="authentication_required",
        )
    if off_session:
        payment.sca_exemption = payment.sca_exemption or "off_session"
    if behaviour.outcome == cards.REQUIRES_ACTION or (
        payment.three_ds_requested and not off_session
    ):
        if off_session:
            return _decline(
                context,
                payment,
                "authentication_required",
                "Your card was declined. This transaction requires authentication.",
                decline_code="authentication_required",
            )
        payment.status = "requires_action"
        payment.three_ds_token = stripe_id("tds")
        url = (
            f"{context.request.base_url()}/stripe/{connector.name}/3ds/{payment.id}"
            f"?token={payment.three_ds_token}"
        )
        if payment.return_url:
            payment.next_action = {
                "type": "redirect_to_url",
                "redirect_to_url": {"return_url": payment.return_url, "url": url},
            }
        else:
            payment.next_action = {
                "type": "use_stripe_sdk",
                "use_stripe_sdk": {
                    "type": "three_d_secure_redirect",
                    "stripe_js": url,
                    "source": stripe_id("src"),
                },
            }
        _emit(context, connector, "payment_intent.requires_action", render_payment_intent(payment))
        return _ok(render_payment_intent(payment))
    _authorize(context, payment)
    return _ok(render_payment_intent(payment))


def _new_charge(payment: Payment, status: str, decline_code: str = "") -> Charge:
    connector = STORE.connectors[payment.connector]
    charge = Charge(
        id=stripe_id("ch"),
        connector=payment.connector,
        dialect="stripe",
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


def _authorize(context: Context | None, payment: Payment) -> None:
    connector = STORE.connectors[payment.connector]
    charge = _new_charge(payment, "authorized")
    if payment.capture_method == "manual":
        payment.status = "requires_capture"
        payment.amount_capturable = payment.amount
        _emit(
            context,
            connector,
            "payment_intent.amount_capturable_updated",
            render_payment_intent(payment),
        )
    else:
        charge.status = "captured"
        charge.amount_captured = payment.amount
        charge.captured_at = now()
        payment.status = "succeeded"
        payment.amount_received = payment.amount
        _emit(context, connector, "payment_intent.succeeded", render_payment_intent(payment))
        disputes.after_capture(connector, payment)


def _decline(
    context: Context,
    payment: Payment,
    code: str,
    message: str,
    *,
    param: str | None = None,
    decline_code: str | None,
    advice_code: str | None = None,
    network_advice_code: str | None = None,
) -> Response:
    connector = context.connector
    charge = _new_charge(payment, "declined", decline_code or code)
    payment.status = "requires_payment_method"
    payment.last_payment_error = {
        "advice_code": advice_code,
        "charge": charge.id,
        "code": code,
        "decline_code": decline_code,
        "doc_url": f"{DOCS}#{code.replace('_', '-')}",
        "message": message,
        "network_advice_code": network_advice_code,
        "param": param,
        "payment_method": _payment_method(payment),
        "type": "card_error",
    }
    payment.last_payment_error = {
        k: v for k, v in payment.last_payment_error.items() if v is not None
    }
    _emit(context, connector, "payment_intent.payment_failed", render_payment_intent(payment))
    error = dict(payment.last_payment_error)
    error["payment_intent"] = render_payment_intent(payment)
    error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{context.request_id}"
    return json_response(402, {"error": error})


def _unexpected_state(payment: Payment, done: str, allowed: tuple[str, ...]) -> Response:
    return _error(
        400,
        "invalid_request_error",
        f"This PaymentIntent could not be {done} because it has a status of "
        f"{payment.status}. Only a PaymentIntent with one of the following statuses may be "
        f"{done}: {', '.join(allowed)}.",
        code="payment_intent_unexpected_state",
        payment_intent=render_payment_intent(payment),
    )


@STRIPE.route("GET", r"/v1/payment_intents/search", "retrieve")
def payment_intent_search(context: Context) -> Response | Execution:
    query = context.request.query_value("query")
    if not query:
        return _missing("query")
    clauses = _parse_search(query)
    if clauses is None:
        return _error(
            400,
            "invalid_request_error",
            f"We were unable to parse your search query. Try using the format "
            f"`metadata['key']:'value'`. Query: {query}",
            code="parameter_invalid_string",
            param="query",
        )
    try:
        limit = max(1, min(100, int(context.request.query_value("limit", "10"))))
    except ValueError:
        limit = 10
    connector = context.connector

    def run() -> Response:
        matches = [
            p
            for p in connector.payments.values()
            if p.dialect == "stripe" and all(_clause_matches(p, c) for c in clauses)
        ]
        matches.sort(key=lambda p: p.created, reverse=True)
        return _ok(
            {
                "object": "search_result",
                "data": [render_payment_intent(p) for p in matches[:limit]],
                "has_more": len(matches) > limit,
                "next_page": None,
                "url": "/v1/payment_intents/search",
            }
        )

    return Execution(run)


_QUOTED = r"'(?:[^'\\]|\\.)*'" + r'|"(?:[^"\\]|\\.)*"'
_CLAUSE = re.compile(
    rf"""\s*(?:metadata\[(?P<key>{_QUOTED})\]|(?P<field>[a-z_]+))"""
    rf"""\s*:\s*(?:(?P<value>{_QUOTED})|(?P<number>\d+))\s*"""
)
_AND = re.compile(r"AND\s+")


def _unquote(token: str) -> str:
    """'pa_\\'x' -> pa_'x: Stripe's query strings escape quotes with a backslash."""
    return re.sub(r"\\(.)", r"\1", token[1:-1])


def _parse_search(query: str) -> list[tuple[str, str, str]] | None:
    """`metadata['k']:'v' AND status:'succeeded'` -> [(kind, name, value), …]; None if invalid."""
    clauses = []
    position = 0
    while True:
        found = _CLAUSE.match(query, position)
        if not found:
            return None
        value = _unquote(found["value"]) if found["value"] is not None else found["number"]
        if found["key"] is not None:
            clauses.append(("metadata", _unquote(found["key"]), value))
        else:
            clauses.append(("field", found["field"], value))
        position = found.end()
        if position == len(query):
            return clauses
        joiner = _AND.match(query, position)
        if not joiner:
            return None
        position = joiner.end()


def _clause_matches(payment: Payment, clause: tuple[str, str, str]) -> bool:
    kind, name, value = clause
    if kind == "metadata":
        return payment.metadata.get(name) == value
    rendered = render_payment_intent(payment)
    return str(rendered.get(name)) == value


@STRIPE.route("GET", r"/v1/payment_intents", "retrieve")
def payment_intent_list(context: Context) -> Response | Execution:
    connector = context.connector

    def run() -> Response:
        payments = sorted(
            (p for p in connector.payments.values() if p.dialect == "stripe"),
            key=lambda p: p.created,
            reverse=True,
        )
        return _ok(
            {
                "object": "list",
                "data": [render_payment_intent(p) for p in payments[:100]],
                "has_more": len(payments) > 100,
                "url": "/v1/payment_intents",
            }
        )

    return Execution(run)


@STRIPE.route("GET", r"/v1/payment_intents/(?P<intent_id>[^/]+)", "retrieve")
def payment_intent_retrieve(context: Context, intent_id: str) -> Response | Execution:
    connector = context.connector

    def run() -> Response:
        payment = connector.payments.get(intent_id)
        if payment is None or payment.dialect != "stripe":
            return _no_such("payment_intent", intent_id, "intent")
        return _ok(render_payment_intent(payment))

    return Execution(run)


@STRIPE.route("POST", r"/v1/payment_intents/(?P<intent_id>[^/]+)/capture", "capture", mutating=True)
def payment_intent_capture(context: Context, intent_id: str) -> Response | Execution:
    try:
        form = context.request.form()
        amount_to_capture = _int_param(form, "amount_to_capture", required=False)
    except ParamError as exc:
        return exc.response
    connector = context.connector

    def run() -> Response:
        payment = connector.payments.get(intent_id)
        if payment is None or payment.dialect != "stripe":
            return _no_such("payment_intent", intent_id, "intent")
        if payment.status != "requires_capture":
            return _unexpected_state(payment, "captured", ("requires_capture",))
        amount = payment.amount_capturable if amount_to_capture is None else amount_to_capture
        if amount > payment.amount_capturable:
            return _error(
                400,
                "invalid_request_error",
                f"The amount to capture ({amount}) is greater than the amount capturable "
                f"({payment.amount_capturable}).",
                code="amount_too_large",
                param="amount_to_capture",
            )
        charge = connector.charges[payment.latest_charge]
        if payment.card_outcome == cards.CAPTURE_FAILS:
            # the authorisation lapsed at the issuer: Stripe cancels the intent
            payment.status = "canceled"
            payment.cancellation_reason = "automatic"
            payment.canceled_at = now()
            payment.amount_capturable = 0
            charge.status = "canceled"
            _emit(context, connector, "payment_intent.canceled", render_payment_intent(payment))
            return _error(
                400,
                "invalid_request_error",
                f"This charge ({charge.id}) cannot be captured because the authorization has "
                "expired.",
                code="charge_expired_for_capture",
                payment_intent=render_payment_intent(payment),
            )
        payment.amount_received = amount
        payment.amount_capturable = 0  # a partial capture releases the rest
        payment.status = "succeeded"
        charge.status = "captured"
        charge.amount_captured = amount
        charge.captured_at = now()
        _emit(context, connector, "payment_intent.succeeded", render_payment_intent(payment))
        disputes.after_capture(connector, payment)
        return _ok(render_payment_intent(payment))

    return Execution(run)


@STRIPE.route("POST", r"/v1/payment_intents/(?P<intent_id>[^/]+)/cancel", "cancel", mutating=True)
def payment_intent_cancel(context: Context, intent_id: str) -> Response | Execution:
    form = context.request.form()
    reason = form.get("cancellation_reason") or None
    if reason is not None and reason not in CANCELLATION_REASONS:
        return _error(
            400,
            "invalid_request_error",
            f"Invalid cancellation_reason: must be one of {', '.join(CANCELLATION_REASONS)}",
            code="parameter_invalid_string",
            param="cancellation_reason",
        )
    connector = context.connector

    def run() -> Response:
        payment = connector.payments.get(intent_id)
        if payment is None or payment.dialect != "stripe":
            return _no_such("payment_intent", intent_id, "intent")
        if payment.status not in CANCELABLE:
            return _error(
                400,
                "invalid_request_error",
                "You cannot cancel this PaymentIntent because it has a status of "
                f"{payment.status}. Only a PaymentIntent with one of the following statuses may "
                f"be canceled: {', '.join(CANCELABLE)}.",
                code="payment_intent_unexpected_state",
                payment_intent=render_payment_intent(payment),
            )
        payment.status = "canceled"
        payment.canceled_at = now()
        payment.cancellation_reason = reason
        payment.amount_capturable = 0
        payment.next_action = None
        if payment.latest_charge:
            charge = connector.charges[payment.latest_charge]
            if charge.status == "authorized":
                charge.status = "canceled"
        _emit(context, connector, "payment_intent.canceled", render_payment_intent(payment))
        return _ok(render_payment_intent(payment))

    return Execution(run)


# -- 3-D Secure (browser page, no auth, no faults) ----------------------------------------------


@STRIPE.route("GET", r"/3ds/(?P<intent_id>[^/]+)", "authorize", public=True)
def three_ds_page(context: Context, intent_id: str) -> Response | Execution:
    request = context.request
    outcome = request.query_value("outcome")
    token = request.query_value("token")
    connector = context.connector
    if outcome not in ("succeeded", "failed"):
        base = f"/stripe/{connector.name}/3ds/{intent_id}?token={token}"
        return html_response(200, _challenge_html(base))

    def run() -> Response:
        payment = connector.payments.get(intent_id)
        if payment is None or payment.dialect != "stripe" or payment.three_ds_token != token:
            return html_response(404, "<h1>Unknown authentication</h1>")
        if payment.status == "requires_action":
            complete_three_ds(payment, outcome)
        if payment.return_url:
            status = "succeeded" if payment.three_ds_outcome == "succeeded" else "failed"
            query = urlencode(
                {
                    "payment_intent": payment.id,
                    "payment_intent_client_secret": _client_secret(payment),
                    "redirect_status": status,
                }
            )
            separator = "&" if "?" in payment.return_url else "?"
            return redirect(f"{payment.return_url}{separator}{query}")
        return html_response(200, f"<h1>Authentication {payment.three_ds_outcome}</h1>")

    return Execution(run)


def complete_three_ds(payment: Payment, outcome: str) -> None:
    connector = STORE.connectors[payment.connector]
    payment.three_ds_outcome = outcome
    payment.next_action = None
    if outcome == "succeeded":
        _authorize(None, payment)
        return
    payment.status = "requires_payment_method"
    payment.last_payment_error = {
        "code": "payment_intent_authentication_failure",
        "doc_url": f"{DOCS}#payment-intent-authentication-failure",
        "message": "The provided PaymentMethod has failed authentication. You can provide "
        "payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent "
        "again.",
        "payment_method": _payment_method(payment),
        "type": "invalid_request_error",
    }
    _emit(None, connector, "payment_intent.payment_failed", render_payment_intent(payment))


def _challenge_html(base: str) -> str:
    return (
        "<!doctype html><title>3-D Secure (simulator)</title>"
        "<h1>3-D Secure authentication</h1><p>Simulated issuer challenge.</p>"
        f'<p><a href="{base}&outcome=succeeded">Complete authentication</a></p>'
        f'<p><a href="{base}&outcome=failed">Fail authentication</a></p>'
    )


# -- charges and refunds ------------------------------------------------------------------------


@STRIPE.route("GET", r"/v1/charges/(?P<charge_id>[^/]+)", "retrieve")
def charge_retrieve(context: Context, charge_id: str) -> Response | Execution:
    connector = context.connector

    def run() -> Response:
        charge = connector.charges.get(charge_id)
        if charge is None or charge.dialect != "stripe":
            return _no_such("charge", charge_id)
        return _ok(render_charge(charge, connector.payments[charge.payment_id]))

    return Execution(run)


@STRIPE.route("POST", r"/v1/refunds", "refund", mutating=True)
def refund_create(context: Context) -> Response | Execution:
    try:
        form = context.request.form()
        amount = _int_param(form, "amount", required=False)
        metadata = _metadata(form)
    except ParamError as exc:
        return exc.response
    intent_id = form.get("payment_intent") or ""
    charge_id = form.get("charge") or ""
    if not intent_id and not charge_id:
        return _error(
            400,
            "invalid_request_error",
            "One of the following params should be provided for this request: payment_intent "
            "or charge.",
            code="parameter_missing",
        )
    reason = form.get("reason") or None
    if reason is not None and reason not in REFUND_REASONS:
        return _error(
            400,
            "invalid_request_error",
            f"Invalid reason: must be one of {', '.join(REFUND_REASONS)}",
            code="parameter_invalid_string",
            param="reason",
        )
    connector = context.connector

    def run() -> Response:
        if intent_id:
            payment = connector.payments.get(intent_id)
            if payment is None or payment.dialect != "stripe":
                return _no_such("payment_intent", intent_id, "payment_intent")
        else:
            charge = connector.charges.get(charge_id)
            if charge is None or charge.dialect != "stripe":
                return _no_such("charge", charge_id, "charge")
            payment = connector.payments[charge.payment_id]
        if payment.status != "succeeded" or not payment.latest_charge:
            return _error(
                400,
                "invalid_request_error",
                f"This PaymentIntent ({payment.id}) does not have a successful charge to refund.",
                code="charge_not_refundable",
                param="payment_intent" if intent_id else "charge",
            )
        charge = connector.charges[payment.latest_charge]
        refundable = payment.amount_received - payment.amount_refunded
        if refundable <= 0:
            return _error(
                400,
                "invalid_request_error",
                f"Charge {charge.id} has already been refunded.",
                code="charge_already_refunded",
            )
        to_refund = refundable if amount is None else amount
        if to_refund > refundable:
            return _error(
                400,
                "invalid_request_error",
                f"Refund amount ({to_refund}) is greater than unrefunded amount on charge "
                f"({refundable})",
                code="amount_too_large",
                param="amount",
            )
        fails = payment.card_outcome == cards.REFUND_FAILS
        refund = Refund(
            id=stripe_id("re"),
            connector=connector.name,
            dialect="stripe",
            payment_id=payment.id,
            charge_id=charge.id,
            amount=to_refund,
            currency=payment.currency,
            status="pending" if fails else "succeeded",
            reason=reason,
            metadata=metadata,
            reference=metadata.get("refund_id", ""),
        )
        connector.refunds[refund.id] = refund
        payment.refund_ids.append(refund.id)
        # a pending refund holds its amount so a second refund cannot over-refund meanwhile
        payment.amount_refunded += to_refund
        charge.amount_refunded += to_refund
        _emit(context, connector, "refund.created", render_refund(refund))
        if fails:
            delay_s = connector.settings.async_outcome_delay_ms / 1000.0
            SCHEDULER.call_later(delay_s, lambda: _fail_refund(connector.name, refund.id))
        else:
            _emit(context, connector, "charge.refunded", render_charge(charge, payment))
        return _ok(render_refund(refund))

    return Execution(run)


def _fail_refund(connector_name: str, refund_id: str) -> None:
    with STORE.lock:
        connector = STORE.connectors.get(connector_name)
        refund = connector.refunds.get(refund_id) if connector else None
        if refund is None or refund.status != "pending":
            return
        payment = connector.payments[refund.payment_id]
        charge = connector.charges[refund.charge_id]
        refund.status = "failed"
        refund.failure_reason = "expired_or_canceled_card"
        payment.amount_refunded -= refund.amount
        charge.amount_refunded -= refund.amount
        _emit(None, connector, "refund.failed", render_refund(refund))
        _emit(None, connector, "refund.updated", render_refund(refund))


@STRIPE.route("GET", r"/v1/refunds/(?P<refund_id>[^/]+)", "retrieve")
def refund_retrieve(context: Context, refund_id: str) -> Response | Execution:
    connector = context.connector

    def run() -> Response:
        refund = connector.refunds.get(refund_id)
        if refund is None or refund.dialect != "stripe":
            return _no_such("refund", refund_id)
        return _ok(render_refund(refund))

    return Execution(run)


@STRIPE.route("GET", r"/v1/refunds", "retrieve")
def refund_list(context: Context) -> Response | Execution:
    intent_id = context.request.query_value("payment_intent")
    connector = context.connector

    def run() -> Response:
        refunds = [
            r
            for r in connector.refunds.values()
            if r.dialect == "stripe" and (not intent_id or r.payment_id == intent_id)
        ]
        refunds.sort(key=lambda r: r.created, reverse=True)
        return _ok(
            {
                "object": "list",
                "data": [render_refund(r) for r in refunds[:100]],
                "has_more": len(refunds) > 100,
                "url": "/v1/refunds",
            }
        )

    return Execution(run)


# -- payouts ------------------------------------------------------------------------------------

# Stripe's test bank account numbers whose payouts fail, and their failure codes.
PAYOUT_FAILING_ACCOUNTS = {
    "000111111116": ("no_account", "The bank account details on file are probably incorrect."),
    "000111111113": ("account_closed", "The bank account has been closed."),
    "000222222227": ("insufficient_funds", "Your Stripe balance is insufficient."),
    "000333333335": ("debit_not_authorized", "Debit transactions are not approved."),
    "000444444440": ("invalid_currency", "The bank was unable to process this payout."),
}
# Simulator-only magic amounts (minor units).
PAYOUT_AMOUNT_REJECTED = 9901  # refused at once: 400 balance_insufficient
PAYOUT_AMOUNT_DELAYED = 9902  # pending, paid later (payout.paid)
PAYOUT_AMOUNT_FAILS_LATER = 9903  # pending, fails later (payout.failed, could_not_process)


def payout_outcome(amount: int, destination: str) -> tuple[str, str | None, str | None]:
    """("paid" | "delayed" | "fails_later" | "rejected", failure_code, failure_message)."""
    for account, (code, message) in PAYOUT_FAILING_ACCOUNTS.items():
        if account in destination:
            return "fails_later", code, message
    lowered = destination.lower()
    if amount == PAYOUT_AMOUNT_REJECTED or "reject" in lowered:
        return "rejected", "balance_insufficient", None
    if amount == PAYOUT_AMOUNT_FAILS_LATER or "fail" in lowered:
        return "fails_later", "could_not_process", "The bank could not process this payout."
    if amount == PAYOUT_AMOUNT_DELAYED or "delay" in lowered:
        return "delayed", None, None
    return "paid", None, None


@STRIPE.route("POST", r"/v1/payouts", "payout", mutating=True)
def payout_create(context: Context) -> Response | Execution:
    try:
        form = context.request.form()
        amount = _int_param(form, "amount", required=True)
        metadata = _metadata(form)
    except ParamError as exc:
        return exc.response
    currency = form.get("currency")
    if not currency:
        return _missing("currency")
    destination = str(form.get("destination", "") or "ba_default")
    connector = context.connector

    def run() -> Response:
        outcome, failure_code, failure_message = payout_outcome(amount, destination)
        if outcome == "rejected":
            return _error(
                400,
                "invalid_request_error",
                "You have insufficient funds in your Stripe account for this transfer.",
                code="balance_insufficient",
            )
        payout = Payout(
            id=stripe_id("po"),
            connector=connector.name,
            amount=amount,
            currency=str(currency).lower(),
            destination=destination,
            status="paid" if outcome == "paid" else "pending",
            metadata=metadata,
            description=form.get("description") or None,
        )
        connector.payouts[payout.id] = payout
        _emit(context, connector, "payout.created", render_payout(payout))
        if outcome == "paid":
            _emit(context, connector, "payout.paid", render_payout(payout))
        else:
            delay_s = connector.settings.async_outcome_delay_ms / 1000.0
            SCHEDULER.call_later(
                delay_s,
                lambda: _settle_payout(connector.name, payout.id, failure_code, failure_message),
            )
        return _ok(render_payout(payout))

    return Execution(run)


def _settle_payout(
    connector_name: str, payout_id: str, failure_code: str | None, failure_message: str | None
) -> None:
    with STORE.lock:
        connector = STORE.connectors.get(connector_name)
        payout = connector.payouts.get(payout_id) if connector else None
        if payout is None or payout.status != "pending":
            return
        if failure_code:
            payout.status = "failed"
            payout.failure_code = failure_code
            payout.failure_message = failure_message
            _emit(None, connector, "payout.failed", render_payout(payout))
        else:
            payout.status = "paid"
            payout.arrival_date = int(time.time())
            _emit(None, connector, "payout.paid", render_payout(payout))


@STRIPE.route("GET", r"/v1/payouts/(?P<payout_id>[^/]+)", "retrieve")
def payout_retrieve(context: Context, payout_id: str) -> Response | Execution:
    connector = context.connector

    def run() -> Response:
        payout = connector.payouts.get(payout_id)
        if payout is None:
            return _no_such("payout", payout_id)
        return _ok(render_payout(payout))

    return Execution(run)


def _rejected(status: int, context: Context | None) -> Response:
    """A request Stripe refuses before processing it, in Stripe's error shapes."""
    if status == 401:
        return _error(401, "invalid_request_error", "Invalid API Key provided: sk_test_****")
    if status == 403:
        return _error(
            403,
            "invalid_request_error",
            "The provided key does not have the required permissions for this endpoint.",
        )
    if status == 404:  # the endpoint itself is not there (a lookup URL, a proxy's route)
        method = context.request.method if context else "GET"
        path = context.path if context else ""
        return _error(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).")
    if status == 429:
        return _error(
            429,
            "invalid_request_error",
            "Too many requests hit the API too quickly.",
            code="rate_limit",
        )
    return _error(status, "invalid_request_error", "Invalid request.", code="parameter_invalid")


# -- disputes ------------------------------------------------------------------------------------


def _dispute_of(context: Context, dispute_id: str):
    dispute = context.connector.disputes.get(dispute_id)
    if dispute is None or dispute.dialect != "stripe":
        return None
    return dispute


@STRIPE.route("GET", r"/v1/disputes/(?P<dispute_id>[^/]+)", "retrieve")
def dispute_retrieve(context: Context, dispute_id: str) -> Response | Execution:
    def run() -> Response:
        dispute = _dispute_of(context, dispute_id)
        if dispute is None:
            return _no_such("dispute", dispute_id)
        return _ok(disputes.render_stripe(dispute))

    return Execution(run)


@STRIPE.route("POST", r"/v1/disputes/(?P<dispute_id>[^/]+)", "dispute", mutating=True)
def dispute_update(context: Context, dispute_id: str) -> Response | Execution:
    """evidence[...] (Stripe's field names) and submit=true|false."""
    form = context.request.form()
    evidence = form.get("evidence") or {}
    if not isinstance(evidence, dict):
        return _error(400, "invalid_request_error", "Invalid evidence.", param="evidence")
    submit = _bool(form.get("submit", "false"))

    def run() -> Response:
        dispute = _dispute_of(context, dispute_id)
        if dispute is None:
            return _no_such("dispute", dispute_id)
        try:
            disputes.submit_evidence(context.connector, dispute, evidence, submit)
        except disputes.DisputeError as exc:
            return _error(400, "invalid_request_error", str(exc), code="dispute_already_closed")
        return _ok(disputes.render_stripe(dispute))

    return Execution(run)


@STRIPE.route("POST", r"/v1/disputes/(?P<dispute_id>[^/]+)/close", "dispute", mutating=True)
def dispute_close(context: Context, dispute_id: str) -> Response | Execution:
    def run() -> Response:
        dispute = _dispute_of(context, dispute_id)
        if dispute is None:
            return _no_such("dispute", dispute_id)
        try:
            disputes.accept(context.connector, dispute)
        except disputes.DisputeError as exc:
            return _error(400, "invalid_request_error", str(exc), code="dispute_already_closed")
        return _ok(disputes.render_stripe(dispute))

    return Execution(run)
