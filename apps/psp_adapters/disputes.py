"""Dispute vocabulary shared by the adapters: the network reason codes and each dialect's
statuses mapped to Stripe's words. Pure data and functions (a leaf, like decline_codes)."""

from __future__ import annotations

from dataclasses import dataclass

# Stripe's dispute reasons (https://docs.stripe.com/disputes/categories)
REASONS = (
    "bank_cannot_process",
    "check_returned",
    "credit_not_processed",
    "customer_initiated",
    "debit_not_authorized",
    "duplicate",
    "fraudulent",
    "general",
    "incorrect_account_details",
    "insufficient_funds",
    "product_not_received",
    "product_unacceptable",
    "subscription_canceled",
    "unrecognized",
)

# card network reason codes -> Stripe's reason (Visa, Mastercard, Amex, Discover)
NETWORK_REASONS: dict[str, str] = {
    # Visa
    "10.1": "fraudulent",
    "10.2": "fraudulent",
    "10.3": "fraudulent",
    "10.4": "fraudulent",
    "10.5": "fraudulent",
    "11.1": "general",
    "11.2": "general",
    "11.3": "general",
    "12.1": "general",
    "12.2": "general",
    "12.3": "general",
    "12.4": "general",
    "12.5": "general",
    "12.6.1": "duplicate",
    "12.6.2": "duplicate",
    "12.7": "general",
    "13.1": "product_not_received",
    "13.2": "subscription_canceled",
    "13.3": "product_unacceptable",
    "13.4": "product_unacceptable",
    "13.5": "product_unacceptable",
    "13.6": "credit_not_processed",
    "13.7": "credit_not_processed",
    # Mastercard
    "4837": "fraudulent",
    "4840": "fraudulent",
    "4849": "fraudulent",
    "4863": "unrecognized",
    "4870": "fraudulent",
    "4871": "fraudulent",
    "4834": "duplicate",
    "4853": "product_unacceptable",
    "4855": "product_not_received",
    "4841": "subscription_canceled",
    "4860": "credit_not_processed",
    "4808": "general",
    # Amex
    "F29": "fraudulent",
    "F24": "fraudulent",
    "C08": "product_not_received",
    "C28": "subscription_canceled",
    "C02": "credit_not_processed",
    "P08": "duplicate",
}

STAGES = ("inquiry", "chargeback", "pre_arbitration", "arbitration")
TERMINAL = frozenset({"warning_closed", "won", "lost", "accepted", "expired"})


def reason_for(network_reason_code: str, text: str = "") -> str:
    """The normalized reason: the network code first, then the PSP's own word, else general."""
    code = (network_reason_code or "").strip()
    if code in NETWORK_REASONS:
        return NETWORK_REASONS[code]
    word = (text or "").strip().lower().replace(" ", "_")
    if word in REASONS:
        return word
    if "fraud" in word:
        return "fraudulent"
    return "general"


# --- Adyen ---------------------------------------------------------------------------------------

# eventCode -> (stage, status when no disputeStatus says otherwise, funds)
ADYEN_EVENTS: dict[str, tuple[str, str, str]] = {
    "REQUEST_FOR_INFORMATION": ("inquiry", "needs_response", ""),
    "NOTIFICATION_OF_CHARGEBACK": ("inquiry", "needs_response", ""),
    "CHARGEBACK": ("chargeback", "needs_response", "withdrawn"),
    "CHARGEBACK_REVERSED": ("chargeback", "won", "reinstated"),
    "SECOND_CHARGEBACK": ("pre_arbitration", "needs_response", "withdrawn"),
    "PREARBITRATION_WON": ("pre_arbitration", "won", "reinstated"),
    "PREARBITRATION_LOST": ("pre_arbitration", "lost", ""),
    "DISPUTE_DEFENSE_PERIOD_ENDED": ("", "expired", ""),
    "NOTIFICATION_OF_FRAUD": ("", "", ""),
}

# additionalData.disputeStatus (Adyen's words, compared in lower case) -> our status family
ADYEN_STATUSES: dict[str, str] = {
    "undefended": "needs_response",
    "unresponded": "needs_response",
    "pending": "under_review",
    "responded": "under_review",
    "won": "won",
    "lost": "lost",
    "accepted": "accepted",
    "expired": "expired",
}


def in_stage(stage: str, status: str) -> str:
    """A chargeback-family status in the words of the stage: an inquiry speaks warning_*."""
    if stage != "inquiry" or not status:
        return status
    if status in ("needs_response", "under_review"):
        return f"warning_{status}"
    return "warning_closed"


@dataclass(frozen=True)
class AdyenDispute:
    stage: str
    status: str
    funds: str


def adyen_dispute(event_code: str, dispute_status: str) -> AdyenDispute:
    """The PSP's own status first, the event code second: a reinstatement (CHARGEBACK_REVERSED)
    that arrives with disputeStatus Lost never marks the dispute won."""
    stage, by_event, funds = ADYEN_EVENTS.get(event_code, ("", "", ""))
    status = ADYEN_STATUSES.get((dispute_status or "").strip().lower(), by_event)
    return AdyenDispute(
        stage=stage, status=in_stage(stage, status) if stage else status, funds=funds
    )


# --- Stripe --------------------------------------------------------------------------------------

STRIPE_STATUSES = frozenset(
    {
        "warning_needs_response",
        "warning_under_review",
        "warning_closed",
        "needs_response",
        "under_review",
        "won",
        "lost",
        "prevented",
    }
)
STRIPE_FUNDS = {
    "charge.dispute.funds_withdrawn": "withdrawn",
    "charge.dispute.funds_reinstated": "reinstated",
}


def stripe_stage(status: str) -> str:
    return "inquiry" if status.startswith("warning_") else "chargeback"
