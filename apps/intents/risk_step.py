"""Radar on the confirm path (apps/risk): what the intents app hands it and does with its answer.

Called inside tx A before routing (`assess`, `block`) and inside tx B (`authorized`,
`declined`). The only added round trip on an approved payment is the one Redis pipeline of the
velocity counters; a decline adds one more (which also discards the CVC)."""

from __future__ import annotations

from functools import partial

from apps.intents.models import PaymentIntent
from apps.intents.representations import risk_outcome_public
from apps.intents.services.common import _emit
from apps.risk import services as risk_services
from apps.vault import selectors as vault_selectors
from apps.vault import services as vault_services

public_outcome = risk_outcome_public


def base_amount(intent: PaymentIntent) -> int:
    """The amount without a surcharge an earlier confirm added."""
    return intent.amount - int((intent.amount_details or {}).get("surcharge") or 0)


def _facts(intent: PaymentIntent, *, client_ip: str, merchant_country: str):
    pm = intent.payment_method
    metadata = intent.metadata or {}
    return risk_services.PaymentFacts(
        merchant_id=intent.merchant_id,
        livemode=intent.livemode,
        payment_intent=intent.public_id,
        amount=base_amount(intent),
        currency=intent.currency,
        card={**vault_selectors.card_routing_facts(pm), "fingerprint": pm.fingerprint},
        email=intent.customer_email,
        client_ip=client_ip,
        customer=str(metadata.get("customer", "")),
        metadata=metadata,
        merchant_country=merchant_country,
        customer_initiated=(intent.payment_method_options or {})
        .get("card", {})
        .get("sca_exemption")
        != "merchant_initiated",
    )


def assess(intent: PaymentIntent, *, client_ip: str = "", merchant_country: str = ""):
    facts = _facts(intent, client_ip=client_ip, merchant_country=merchant_country)
    assessment = risk_services.risk_assess(facts=facts)
    outcome = assessment.outcome()
    outcome["signals"] = risk_services.stored_signals(assessment.signals)
    outcome["three_d_secure"] = risk_services.sca_decide(
        options=intent.payment_method_options, assessment=assessment
    )
    if assessment.type == "manual_review":
        # authorized only: captured when staff approve, if the merchant asked for automatic
        outcome["capture_on_approve"] = (
            intent.capture_method == PaymentIntent.CaptureMethod.AUTOMATIC
        )
        intent.capture_method = PaymentIntent.CaptureMethod.MANUAL
    intent.risk_outcome = outcome
    intent._risk_facts = facts
    # surcharge: computed now, shown as amount_details.surcharge, charged as part of the amount
    base = facts.amount
    surcharge = (
        risk_services.surcharge_for_payment(
            assessment=assessment, base=base, currency=intent.currency, card=facts.card
        )
        if assessment.type != "blocked"
        else {"amount": 0}
    )
    intent.amount = base + surcharge["amount"]
    intent.amount_details = (
        {"surcharge": surcharge["amount"], "surcharge_rule": surcharge["rule"]}
        if surcharge["amount"]
        else {}
    )
    return assessment


def block(intent: PaymentIntent, assessment) -> None:
    """tx A: the payment fails as a `fraudulent` decline; no attempt, no PSP call."""
    previous = {"status": intent.status}
    intent.start_processing()
    intent.fail()
    intent.last_payment_error = {
        "type": "card_error",
        "code": "card_declined",
        "decline_code": "fraudulent",
        "message": "Your card was declined.",
        "radar_rule": assessment.rule.id if assessment.rule else None,
    }
    intent.next_action = None
    intent.save(
        update_fields=[
            "status",
            "payment_method",
            "last_payment_error",
            "next_action",
            "risk_outcome",
            "amount",
            "amount_details",
            "updated_at",
        ]
    )
    _emit(intent, "payment_intent.payment_failed", previous)
    # the CVC's discard rides in the round trip that counts the block as a decline
    risk_services.risk_payment_blocked(
        facts=intent._risk_facts,
        assessment=assessment,
        alongside=_cvc_discard(intent),
    )


def authorized(intent: PaymentIntent) -> None:
    """tx B, a manual-capture authorization: a payment Radar sent to review enters the queue."""
    outcome = intent.risk_outcome or {}
    if outcome.get("type") != "manual_review":
        return
    risk_services.review_open(
        merchant_id=intent.merchant_id,
        livemode=intent.livemode,
        payment_intent=intent.public_id,
        amount=intent.amount,
        currency=intent.currency,
        capture_on_approve=bool(outcome.get("capture_on_approve")),
        outcome=outcome,
    )


def moved_on(intent: PaymentIntent, how: str) -> None:
    """tx B of a capture or a cancel: a review still open on the payment is closed (the merchant
    or the system decided before the queue did)."""
    if (intent.risk_outcome or {}).get("type") == "manual_review":
        risk_services.review_close_for_intent(payment_intent=intent.public_id, reason=how)


def _cvc_discard(intent: PaymentIntent):
    return partial(vault_services.vault_discard_cvc_on, payment_method=intent.payment_method)


def declined(intent: PaymentIntent, *, discard_cvc: bool = False) -> None:
    """tx B, the payment failed on a decline: counted in the velocity counters at once (a
    decline counted for a tx B that then rolls back errs on the side of caution). With
    `discard_cvc`, the CVC's discard (`vault_discard_cvc`) rides in the same round trip."""
    outcome = intent.risk_outcome or {}
    signals = {
        "card_fingerprint": getattr(intent.payment_method, "fingerprint", ""),
        "email": (intent.customer_email or "").strip().lower(),
        "ip_address": (outcome.get("signals") or {}).get("ip_address") or "",
        "customer": str((intent.metadata or {}).get("customer", "")),
    }
    risk_services.risk_record_decline(
        facts_signals=signals,
        merchant_id=intent.merchant_id,
        livemode=intent.livemode,
        event_id=intent.public_id,
        alongside=_cvc_discard(intent) if discard_cvc else None,
    )
