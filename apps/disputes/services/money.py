"""The money of a dispute follows the PSP: withdrawals, reinstatements and the dispute fee
as ledger journals, the payment's `amount_disputed` through apps.intents."""

from __future__ import annotations

from apps.connectors import selectors as connector_selectors
from apps.disputes.models import Dispute
from apps.intents import services as intent_services
from apps.ledger import postings
from apps.ledger import services as ledger


def _splits(splits: list[dict]) -> list[postings.Split]:
    return [postings.Split(seller_id=s["seller"], amount=s["amount"]) for s in splits]


def _ledger_common(dispute: Dispute) -> dict:
    return {
        "merchant_id": dispute.merchant_id,
        "livemode": dispute.livemode,
        "currency": dispute.currency,
        "metadata": {"dispute": dispute.public_id, "payment_intent": dispute.intent.public_id},
        "source_type": "dispute",
        "source_id": dispute.public_id,
    }


def _withdraw(dispute: Dispute) -> None:
    """The PSP took the disputed amount: from the merchant (and sellers) as far as the payment
    still holds it after refunds and other disputes, the rest as the platform's loss."""
    take = intent_services.intent_dispute_take(intent_id=dispute.intent_id, amount=dispute.amount)
    uncovered = dispute.amount - take.taken
    ledger.ledger_post(
        kind="chargeback",
        idempotency_key=f"{dispute.public_id}:withdrawal:{dispute.withdrawals_seen}",
        legs=postings.dispute_withdrawal_legs(
            connector=dispute.connector.public_id,
            taken=take.taken,
            uncovered=uncovered,
            captured_amount=take.amount_received,
            taken_before=take.taken_before,
            splits=_splits(take.splits),
        ),
        description=f"dispute {dispute.public_id}: funds withdrawn",
        **_ledger_common(dispute),
    )
    dispute.funds_withdrawn = True
    dispute.amount_taken = take.taken
    dispute.amount_uncovered = uncovered
    dispute.taken_before = take.taken_before


def _reinstate(dispute: Dispute) -> None:
    """Won: the PSP returns the amount (not its fee) to whoever bore it."""
    ledger.ledger_post(
        kind="chargeback_reversal",
        idempotency_key=f"{dispute.public_id}:reinstatement:{dispute.reinstatements_seen}",
        legs=postings.dispute_reinstatement_legs(
            connector=dispute.connector.public_id,
            taken=dispute.amount_taken,
            uncovered=dispute.amount_uncovered,
            captured_amount=dispute.intent.amount_received,
            taken_before=dispute.taken_before,
            splits=_splits(list(dispute.intent.splits or [])),
        ),
        description=f"dispute {dispute.public_id}: funds reinstated",
        **_ledger_common(dispute),
    )
    intent_services.intent_dispute_return(intent_id=dispute.intent_id, amount=dispute.amount_taken)
    dispute.funds_withdrawn = False
    dispute.amount_taken = 0
    dispute.amount_uncovered = 0
    dispute.taken_before = 0


def _charge_fee(dispute: Dispute) -> None:
    fee = connector_selectors.connector_dispute_fee(
        connector_id=dispute.connector_id, currency=dispute.currency
    )
    if fee <= 0:
        return
    ledger.ledger_post(
        kind="chargeback",
        idempotency_key=f"{dispute.public_id}:fee:{dispute.withdrawals_seen}",
        legs=postings.dispute_withdrawal_legs(
            connector=dispute.connector.public_id, taken=0, dispute_fee=fee
        ),
        description=f"dispute {dispute.public_id}: dispute fee",
        **_ledger_common(dispute),
    )
    dispute.fees_charged += fee


def _return_fee(dispute: Dispute, fee: int) -> None:
    """The PSP gave the dispute fee back with the amount: the fee journal, negated."""
    fee = min(fee, dispute.fees_charged - dispute.fees_returned)
    if fee <= 0:
        return
    ledger.ledger_post(
        kind="chargeback_reversal",
        idempotency_key=f"{dispute.public_id}:fee_returned:{dispute.reinstatements_seen}",
        legs=postings.dispute_fee_return_legs(
            connector=dispute.connector.public_id, dispute_fee=fee
        ),
        description=f"dispute {dispute.public_id}: dispute fee returned",
        **_ledger_common(dispute),
    )
    dispute.fees_returned += fee


def _follow_funds(dispute: Dispute, funds: str, fee_returned: int = 0) -> list[str]:
    """Counts what the PSP did to the money and brings the ledger to it: withdrawn while the
    PSP's withdrawals outnumber its reinstatements. So a reinstatement that arrives before
    its withdrawal nets to nothing, and a duplicate can never post twice."""
    events = []
    if funds == "withdrawn":
        dispute.withdrawals_seen += 1
        _charge_fee(dispute)
    elif funds == "reinstated":
        dispute.reinstatements_seen += 1
        _return_fee(dispute, fee_returned)
    should_hold = dispute.withdrawals_seen > dispute.reinstatements_seen
    if should_hold and not dispute.funds_withdrawn:
        _withdraw(dispute)
        events.append("dispute.funds_withdrawn")
    elif not should_hold and dispute.funds_withdrawn:
        _reinstate(dispute)
        events.append("dispute.funds_reinstated")
    return events
