"""Ledger postings for checkout-plane state changes, called inside the same database
transaction as the state change, so a payment and its journal commit or roll back together.
The ledger is a leaf: only primitives cross this line. Idempotency keys are derived from our
object ids, so a retried transition can never post twice."""

from __future__ import annotations

from datetime import timedelta

from apps.connectors import selectors as connector_selectors
from apps.ledger import postings
from apps.ledger import services as ledger


def _common(intent) -> dict:
    return {
        "metadata": {"payment_intent": intent.public_id},
        "source_type": "payment_intent",
        "source_id": intent.public_id,
    }


def _splits(intent) -> list[postings.Split]:
    return [postings.Split(seller_id=s["seller"], amount=s["amount"]) for s in intent.splits]


def _fee(intent, amount: int) -> int:
    brand = intent.payment_method.brand if intent.payment_method_id else "*"
    return connector_selectors.estimate_fee(
        connector=intent.connector, amount=amount, currency=intent.currency, brand=brand
    )


def _surcharge(intent, captured: int) -> int:
    """The part of `captured` that is the shopper's surcharge (in proportion when a capture
    takes less than the whole amount)."""
    surcharge = int((intent.amount_details or {}).get("surcharge") or 0)
    return surcharge * captured // intent.amount if surcharge else 0


def on_authorized(*, intent, attempt) -> None:
    """A manual-capture authorization is a two-phase hold: capture posts at most the held
    amount and releases the rest; a void or an expiry releases all of it."""
    window = timedelta(days=intent.connector.authorization_window_days)
    hold = ledger.ledger_hold(
        merchant_id=intent.merchant_id,
        livemode=intent.livemode,
        currency=intent.currency,
        idempotency_key=f"{attempt.public_id}:hold",
        legs=postings.authorization_legs(amount=intent.amount),
        expires_at=intent.authorized_at + window,
        **_common(intent),
    )
    intent.ledger_hold = hold.public_id
    intent.save(update_fields=["ledger_hold"])


def on_captured(*, intent, amount: int) -> None:
    """Receivable from the PSP (net of its estimated fee) against the merchant's pending
    balance, the platform fee, and each seller's split."""
    legs = postings.capture_legs(
        connector=intent.connector.public_id,
        amount=amount,
        psp_fee=_fee(intent, amount),
        platform_fee=intent.platform_fee_amount,
        splits=_splits(intent),
        surcharge=_surcharge(intent, amount),
    )
    # per hold: a capture reverted by a CAPTURE_FAILED notification reopens a new hold, and
    # capturing that one again must not collide with the first capture's key
    key = f"{intent.public_id}:capture:{intent.ledger_hold or 'direct'}"
    if intent.ledger_hold:
        ledger.ledger_capture_hold(
            hold=intent.ledger_hold,
            amount=amount,
            legs=legs,
            idempotency_key=key,
            **_common(intent),
        )
    else:  # automatic capture: no separate authorization phase to hold
        ledger.ledger_post(
            merchant_id=intent.merchant_id,
            livemode=intent.livemode,
            currency=intent.currency,
            kind="capture",
            idempotency_key=key,
            legs=legs,
            **_common(intent),
        )


def on_voided(*, intent, expired: bool = False) -> None:
    """Releases the whole hold. An expiry is a void with reason "expired": our cancel service
    decides when an authorization has expired (the connector's window), not the ledger's clock,
    because by then the PSP has already voided it."""
    if not intent.ledger_hold:
        return
    ledger.ledger_void_hold(
        hold=intent.ledger_hold,
        idempotency_key=f"{intent.public_id}:void",
        reason="expired" if expired else "canceled",
        **_common(intent),
    )


def on_refunded(*, intent, refund, previously_refunded: int) -> None:
    ledger.ledger_post(
        merchant_id=intent.merchant_id,
        livemode=intent.livemode,
        currency=intent.currency,
        kind="refund",
        idempotency_key=f"{refund.public_id}:refund",
        legs=postings.refund_legs(
            connector=intent.connector.public_id,
            amount=refund.amount,
            captured_amount=intent.amount_received,
            previously_refunded=previously_refunded,
            splits=_splits(intent),
            surcharge=_surcharge(intent, intent.amount_received),
        ),
        metadata={"payment_intent": intent.public_id, "refund": refund.public_id},
        source_type="refund",
        source_id=refund.public_id,
    )


def release_settled_funds() -> int:
    """Beat task body: captured funds become available after their connector's settlement
    delay (settlement files will confirm them later)."""
    from apps.connectors import selectors as connector_selectors

    return ledger.ledger_release_settled(
        delays_by_connector=connector_selectors.connector_settlement_delays(),
        default_delay_seconds=2 * 86400,
    )
