"""Disputes, played as the PSP plays them, in both dialects.

A dispute is opened on a captured payment by a dispute test card (a configurable time after
capture: `ConnectorSettings.dispute_delay_ms`), by the control API (`POST /_sim/disputes`) or by
`manage.py simulator_dispute`. The simulator then takes the merchant's answer through its
dialect's endpoint (Stripe `POST /v1/disputes/{id}` with `evidence` and `submit`,
`POST /v1/disputes/{id}/close`; Adyen's dispute service `supplyDefenseDocument`,
`defendDispute`, `acceptDispute`) and decides at once by one rule:

    the evidence wins when its text (Stripe: `uncategorized_text`; Adyen: any defense document's
    content) contains "winning_evidence"; any other answer loses (as Stripe's test mode).

Notifications, per dialect (Stripe carries the Dispute object; Adyen a NotificationRequestItem
whose pspReference is the dispute's and originalReference the payment's, with
additionalData.disputeStatus, chargebackReasonCode, defensePeriodEndsAt):

| step | Stripe | Adyen |
| --- | --- | --- |
| inquiry opened | charge.dispute.created (warning_needs_response) | REQUEST_FOR_INFORMATION |
| chargeback opened | dispute.created + funds_withdrawn | NOTIFICATION_OF_CHARGEBACK, CHARGEBACK |
| inquiry escalated | charge.dispute.updated (needs_response) + funds_withdrawn | CHARGEBACK |
| evidence submitted | charge.dispute.updated (under_review) | (none) |
| won | charge.dispute.closed (won) + funds_reinstated | CHARGEBACK_REVERSED (Won) |
| lost | charge.dispute.closed (lost) | DISPUTE_DEFENSE_PERIOD_ENDED (Lost) |
| accepted | charge.dispute.closed (lost) | DISPUTE_DEFENSE_PERIOD_ENDED (Accepted) |
| due date passed | charge.dispute.closed (lost) | DISPUTE_DEFENSE_PERIOD_ENDED (Lost) |
| second chargeback (Adyen) | - | SECOND_CHARGEBACK, then PREARBITRATION_WON / _LOST |

Callers hold STORE.lock."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apps.psp_simulator import cards
from apps.psp_simulator.state import (
    SCHEDULER,
    STORE,
    ConnectorState,
    Payment,
    adyen_psp_reference,
    now,
    stripe_id,
)
from apps.psp_simulator.webhooks import STRIPE_API_VERSION, OutboundEvent

logger = logging.getLogger("psp_simulator.disputes")

WINNING_EVIDENCE = "winning_evidence"
DEFAULT_DUE_DAYS = 7
# Stripe's reason -> (Visa reason code, Adyen's reason text)
REASON_CODES = {
    "fraudulent": ("10.4", "Fraud"),
    "product_not_received": ("13.1", "Merchandise/Services Not Received"),
    "duplicate": ("12.6.1", "Duplicate Processing"),
    "subscription_canceled": ("13.2", "Cancelled Recurring"),
    "credit_not_processed": ("13.6", "Credit Not Processed"),
    "product_unacceptable": ("13.3", "Not as Described or Defective Merchandise"),
    "general": ("12.7", "Invalid Data"),
}


class DisputeError(ValueError):
    pass


@dataclass
class SimDispute:
    id: str  # Stripe du_… / Adyen pspReference of the dispute
    connector: str
    dialect: str
    payment_id: str
    charge_id: str
    amount: int
    currency: str
    reason: str
    network_reason_code: str
    status: str  # Stripe's words
    stage: str = "chargeback"  # inquiry | chargeback | pre_arbitration
    due_by: int = 0
    evidence: dict[str, str] = field(default_factory=dict)
    documents: list[dict[str, str]] = field(default_factory=list)
    submitted: bool = False
    merchant_account: str = ""
    fee: int = 1500  # the dispute fee (15.00), withdrawn with the amount
    fee_returned_on_win: bool = False  # some PSPs give the fee back when the merchant wins
    balance_transactions: list[dict[str, int]] = field(default_factory=list)
    # the money as it moved, both dialects, for the settlement batches (issue 14): each a
    # withdrawal or a reinstatement with its amount, fee and when (unix seconds)
    movements: list[dict[str, Any]] = field(default_factory=list)
    created: int = field(default_factory=now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "connector": self.connector,
            "dialect": self.dialect,
            "payment_id": self.payment_id,
            "amount": self.amount,
            "currency": self.currency,
            "reason": self.reason,
            "network_reason_code": self.network_reason_code,
            "status": self.status,
            "stage": self.stage,
            "due_by": self.due_by,
            "evidence": self.evidence,
            "documents": len(self.documents),
            "submitted": self.submitted,
            "created": self.created,
        }


def disputes_of(connector: ConnectorState) -> dict[str, SimDispute]:
    return connector.disputes


def find(dispute_id: str) -> tuple[ConnectorState, SimDispute] | None:
    for state in STORE.connectors.values():
        dispute = state.disputes.get(dispute_id)
        if dispute is not None:
            return state, dispute
    return None


# --------------------------------------------------------------------------- rendering


def render_stripe(dispute: SimDispute) -> dict[str, Any]:
    return {
        "id": dispute.id,
        "object": "dispute",
        "amount": dispute.amount,
        "currency": dispute.currency,
        "charge": dispute.charge_id,
        "payment_intent": dispute.payment_id,
        "created": dispute.created,
        "evidence": dispute.evidence,
        "evidence_details": {
            "due_by": dispute.due_by,
            "has_evidence": bool(dispute.evidence),
            "past_due": now() > dispute.due_by,
            "submission_count": 1 if dispute.submitted else 0,
        },
        "is_charge_refundable": dispute.stage == "inquiry",
        "livemode": False,
        "metadata": {},
        "payment_method_details": {
            "type": "card",
            "card": {"brand": "visa", "network_reason_code": dispute.network_reason_code},
        },
        "reason": dispute.reason,
        "status": dispute.status,
        "balance_transactions": [
            {"object": "balance_transaction", "amount": t["amount"], "fee": t["fee"]}
            for t in dispute.balance_transactions
        ],
    }


def _moved(dispute: SimDispute, kind: str, amount: int, fee: int) -> None:
    """Records a withdrawal or reinstatement for the settlement batches (both dialects)."""
    dispute.movements.append({"kind": kind, "amount": amount, "fee": fee, "created": now()})


def _withdrawn(dispute: SimDispute) -> None:
    _moved(dispute, "withdrawal", -dispute.amount, dispute.fee)
    if dispute.dialect == "stripe":
        dispute.balance_transactions.append({"amount": -dispute.amount, "fee": dispute.fee})


def _reinstated(dispute: SimDispute) -> None:
    # Adyen's notifications carry no fee given back: only Stripe's balance transaction does
    fee = -dispute.fee if dispute.fee_returned_on_win and dispute.dialect == "stripe" else 0
    _moved(dispute, "reinstatement", dispute.amount, fee)
    if dispute.dialect == "stripe":
        dispute.balance_transactions.append({"amount": dispute.amount, "fee": fee})


def _emit_stripe(connector: ConnectorState, event_type: str, dispute: SimDispute) -> None:
    event_id = stripe_id("evt")
    connector.emit(
        OutboundEvent(
            dialect="stripe",
            event_id=event_id,
            event_type=event_type,
            payload={
                "id": event_id,
                "object": "event",
                "api_version": STRIPE_API_VERSION,
                "created": now(),
                "data": {"object": render_stripe(dispute)},
                "livemode": False,
                "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None},
                "type": event_type,
            },
        )
    )


def _iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, tz=UTC).isoformat(timespec="seconds")


def _emit_adyen(
    connector: ConnectorState, event_code: str, dispute: SimDispute, dispute_status: str
) -> None:
    item = {
        "additionalData": {
            "disputeStatus": dispute_status,
            "chargebackReasonCode": dispute.network_reason_code,
            "chargebackSchemeCode": "visa",
            "defensePeriodEndsAt": _iso(dispute.due_by),
            "defendable": "true",
        },
        "amount": {"currency": dispute.currency.upper(), "value": dispute.amount},
        "eventCode": event_code,
        "eventDate": _iso(now()),
        "merchantAccountCode": dispute.merchant_account,
        "merchantReference": "",
        "originalReference": dispute.payment_id,
        "paymentMethod": "visa",
        "pspReference": dispute.id,
        "reason": REASON_CODES.get(dispute.reason, ("", dispute.reason))[1],
        "success": "true",
    }
    connector.emit(
        OutboundEvent(
            dialect="adyen",
            event_id=f"{event_code}:{dispute.id}:true",
            event_type=event_code,
            payload=item,
        )
    )


# --------------------------------------------------------------------------- the PSP's moves


def open_dispute(
    connector: ConnectorState,
    payment: Payment,
    *,
    reason: str = "fraudulent",
    amount: int | None = None,
    inquiry: bool = False,
    due_in_days: float = DEFAULT_DUE_DAYS,
    fee_returned_on_win: bool = False,
) -> SimDispute:
    if payment.amount_received <= 0:
        raise DisputeError(f"payment {payment.id} has no captured funds to dispute")
    if reason not in REASON_CODES:
        raise DisputeError(f"reason must be one of {', '.join(sorted(REASON_CODES))}")
    # the PSP disputes what the shopper still paid: the captured amount less refunds
    disputable = payment.amount_received - payment.amount_refunded
    amount = disputable if amount is None else amount
    if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= disputable:
        raise DisputeError(f"amount must be between 1 and {disputable}")
    adyen = payment.dialect == "adyen"
    dispute = SimDispute(
        id=adyen_psp_reference() if adyen else stripe_id("du"),
        connector=connector.name,
        dialect=payment.dialect,
        payment_id=payment.id,
        charge_id=payment.latest_charge or "",
        amount=amount,
        currency=payment.currency,
        reason=reason,
        network_reason_code=REASON_CODES[reason][0],
        status="warning_needs_response" if inquiry else "needs_response",
        stage="inquiry" if inquiry else "chargeback",
        due_by=now() + int(due_in_days * 86400),
        merchant_account=payment.merchant_account,
        fee_returned_on_win=fee_returned_on_win,
    )
    connector.disputes[dispute.id] = dispute
    if adyen:
        if inquiry:
            _emit_adyen(connector, "REQUEST_FOR_INFORMATION", dispute, "Undefended")
        else:
            _emit_adyen(connector, "NOTIFICATION_OF_CHARGEBACK", dispute, "Undefended")
            _withdrawn(dispute)
            _emit_adyen(connector, "CHARGEBACK", dispute, "Undefended")
    else:
        if not inquiry:
            _withdrawn(dispute)
        _emit_stripe(connector, "charge.dispute.created", dispute)
        if not inquiry:
            _emit_stripe(connector, "charge.dispute.funds_withdrawn", dispute)
    logger.info("dispute %s opened on %s (%s)", dispute.id, payment.id, reason)
    return dispute


def escalate(connector: ConnectorState, dispute: SimDispute) -> None:
    """The inquiry becomes a chargeback: the funds are withdrawn."""
    if dispute.stage != "inquiry" or dispute.status in ("won", "lost", "warning_closed"):
        raise DisputeError("only an open inquiry can be escalated")
    dispute.stage, dispute.status, dispute.submitted = "chargeback", "needs_response", False
    if dispute.dialect == "adyen":
        _withdrawn(dispute)
        _emit_adyen(connector, "CHARGEBACK", dispute, "Undefended")
    else:
        _withdrawn(dispute)
        _emit_stripe(connector, "charge.dispute.updated", dispute)
        _emit_stripe(connector, "charge.dispute.funds_withdrawn", dispute)


def second_chargeback(connector: ConnectorState, dispute: SimDispute) -> None:
    """Adyen: the issuer disputes again after the merchant won (pre-arbitration)."""
    if dispute.dialect != "adyen":
        raise DisputeError("second chargebacks are played in the Adyen dialect only")
    if dispute.status != "won" or dispute.stage != "chargeback":
        raise DisputeError("a second chargeback follows a won chargeback")
    dispute.stage, dispute.status, dispute.submitted = "pre_arbitration", "needs_response", False
    dispute.evidence, dispute.documents = {}, []
    _withdrawn(dispute)
    _emit_adyen(connector, "SECOND_CHARGEBACK", dispute, "Undefended")


def _close(connector: ConnectorState, dispute: SimDispute, outcome: str) -> None:
    """outcome: won | lost | accepted | expired."""
    if dispute.stage == "inquiry":
        dispute.status = "warning_closed"
        if dispute.dialect == "stripe":
            _emit_stripe(connector, "charge.dispute.closed", dispute)
        else:
            _emit_adyen(
                connector,
                "DISPUTE_DEFENSE_PERIOD_ENDED",
                dispute,
                {"won": "Won", "accepted": "Accepted"}.get(outcome, "Lost"),
            )
        return
    dispute.status = "won" if outcome == "won" else "lost"
    if dispute.dialect == "stripe":
        if outcome == "won":
            _reinstated(dispute)
        _emit_stripe(connector, "charge.dispute.closed", dispute)
        if outcome == "won":
            _emit_stripe(connector, "charge.dispute.funds_reinstated", dispute)
        return
    if dispute.stage == "pre_arbitration":
        code = "PREARBITRATION_WON" if outcome == "won" else "PREARBITRATION_LOST"
        if outcome == "won":
            _reinstated(dispute)
        _emit_adyen(connector, code, dispute, "Won" if outcome == "won" else "Lost")
        return
    if outcome == "won":
        _reinstated(dispute)
        _emit_adyen(connector, "CHARGEBACK_REVERSED", dispute, "Won")
    else:
        status = "Accepted" if outcome == "accepted" else "Lost"
        _emit_adyen(connector, "DISPUTE_DEFENSE_PERIOD_ENDED", dispute, status)


def _answerable(dispute: SimDispute) -> None:
    if dispute.status in ("won", "lost", "warning_closed"):
        raise DisputeError("This dispute is already closed.")
    if dispute.submitted:
        raise DisputeError("Evidence has already been submitted for this dispute.")


def _wins(dispute: SimDispute) -> bool:
    if WINNING_EVIDENCE in (dispute.evidence.get("uncategorized_text") or ""):
        return True
    for document in dispute.documents:
        try:
            content = base64.b64decode(document.get("content", ""), validate=False)
        except ValueError:
            continue
        if WINNING_EVIDENCE.encode() in content:
            return True
    return False


def submit_evidence(
    connector: ConnectorState, dispute: SimDispute, evidence: dict[str, str], submit: bool
) -> None:
    _answerable(dispute)
    dispute.evidence.update({k: str(v) for k, v in evidence.items() if v not in (None, "")})
    if not submit:
        if dispute.dialect == "stripe":
            _emit_stripe(connector, "charge.dispute.updated", dispute)
        return
    dispute.submitted = True
    if dispute.dialect == "stripe":
        dispute.status = "warning_under_review" if dispute.stage == "inquiry" else "under_review"
        _emit_stripe(connector, "charge.dispute.updated", dispute)
    _close(connector, dispute, "won" if _wins(dispute) else "lost")


def supply_document(dispute: SimDispute, documents: list[dict[str, str]]) -> None:
    _answerable(dispute)
    dispute.documents.extend(documents)


def accept(connector: ConnectorState, dispute: SimDispute) -> None:
    _answerable(dispute)
    dispute.submitted = True
    _close(connector, dispute, "accepted")


def expire(connector: ConnectorState, dispute: SimDispute) -> None:
    """The due date passed without an answer: the merchant loses."""
    _answerable(dispute)
    _close(connector, dispute, "expired")


def decide(connector: ConnectorState, dispute: SimDispute, outcome: str) -> None:
    """Control: the issuer decides now (won | lost), whatever was submitted."""
    if dispute.status in ("won", "lost", "warning_closed"):
        raise DisputeError("This dispute is already closed.")
    _close(connector, dispute, outcome)


# --------------------------------------------------------------------------- dispute cards


def after_capture(connector: ConnectorState, payment: Payment) -> None:
    """A payment made with a dispute test card is disputed `dispute_delay_ms` after capture."""
    card = cards.CARDS_BY_NUMBER.get(payment.card_number_key)
    if card is None or card.outcome not in (cards.DISPUTE, cards.INQUIRY):
        return
    name, payment_id = connector.name, payment.id
    inquiry = card.outcome == cards.INQUIRY

    def job() -> None:
        with STORE.lock:
            state = STORE.connectors.get(name)
            target = state.payments.get(payment_id) if state else None
            if target is None or target.amount_received <= 0:
                return
            try:
                open_dispute(state, target, reason=card.dispute_reason, inquiry=inquiry)
            except DisputeError as exc:
                logger.info("dispute card payment %s not disputed: %s", payment_id, exc)

    SCHEDULER.call_later(connector.settings.dispute_delay_ms / 1000.0, job)
