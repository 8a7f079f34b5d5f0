"""The simulator's test cards: one table, the same in the Stripe and the Adyen dialect.

Numbers come from Stripe's published test cards wherever Stripe has one for the outcome
(https://docs.stripe.com/testing). Outcomes Stripe has no number for use numbers in the
`4000 0099 0000 00xx` range, marked `source="simulator"`: they are Luhn-valid so a vault or an
adapter that checks Luhn accepts them, and they exist only here.

Any other Luhn-valid number approves; a number that fails the Luhn check is declined as
`incorrect_number` (Stripe's `4242424242424241` is such a number).

Each decline names Stripe's vocabulary (`stripe_code` is the API error `code`, `decline_code` the
issuer reason) and the Adyen equivalent (`resultCode`, `refusalReasonCode` + `refusalReason` from
Adyen's refusal reason table, and an ISO 8583 raw acquirer response for `refusalReasonRaw`).
"""

from __future__ import annotations

from dataclasses import dataclass

# outcomes
APPROVE = "approve"
DECLINE = "decline"
REQUIRES_ACTION = "requires_action"  # 3-D Secure challenge before authorisation
SLOW_APPROVE = "slow_approve"  # issuer answers after SLOW_CARD_DELAY_S, then approves
REFUND_FAILS = "refund_fails"  # payment approves; any refund of it fails asynchronously
CAPTURE_FAILS = "capture_fails"  # authorisation approves; the capture fails
# declines with authentication_required unless the merchant asked for 3-D Secure; then the
# challenge, then approves (the issuer wants SCA: a step-up retry with 3DS succeeds)
STEP_UP = "step_up"
DISPUTE = "dispute"  # approves; disputed (chargeback) a while after capture (apps/.../disputes.py)
INQUIRY = "inquiry"  # approves; an inquiry (retrieval request) a while after capture

SLOW_CARD_DELAY_S = 3.0


@dataclass(frozen=True)
class TestCard:
    number: str
    brand: str  # visa | mastercard | amex
    outcome: str
    description: str
    source: str = "stripe"  # "stripe": Stripe publishes this number; "simulator": ours only
    # declines only
    decline_code: str = ""  # Stripe decline_code / our normalized code
    stripe_code: str = "card_declined"  # Stripe error.code
    stripe_message: str = "Your card was declined."
    stripe_param: str = ""
    advice_code: str = ""
    adyen_result_code: str = "Refused"
    adyen_refusal_code: str = ""
    adyen_refusal_reason: str = ""
    raw_response: str = ""  # ISO 8583 response as acquirers report it
    # Mastercard's merchant advice code (MAC) on a decline: "03"/"21" = do not try again
    network_advice_code: str = ""
    dispute_reason: str = ""  # dispute cards: Stripe's reason

    @property
    def last4(self) -> str:
        return self.number[-4:]


def _decline(number: str, code: str, description: str, **kwargs) -> TestCard:
    return TestCard(
        number=number,
        brand="visa",
        outcome=DECLINE,
        decline_code=code,
        description=description,
        **kwargs,
    )


TEST_CARDS: tuple[TestCard, ...] = (
    # approvals
    TestCard("4242424242424242", "visa", APPROVE, "Visa, approves"),
    TestCard("4012888888881881", "visa", APPROVE, "Visa, approves"),
    TestCard("4000056655665556", "visa", APPROVE, "Visa debit, approves"),
    TestCard("5555555555554444", "mastercard", APPROVE, "Mastercard, approves"),
    TestCard("2223003122003222", "mastercard", APPROVE, "Mastercard 2-series, approves"),
    TestCard("5200828282828210", "mastercard", APPROVE, "Mastercard debit, approves"),
    TestCard("378282246310005", "amex", APPROVE, "American Express, approves"),
    TestCard("371449635398431", "amex", APPROVE, "American Express, approves"),
    # soft declines
    _decline(
        "4000000000000002",
        "generic_decline",
        "Generic decline (soft)",
        adyen_refusal_code="2",
        adyen_refusal_reason="Refused",
        raw_response="DECLINED",
    ),
    _decline(
        "4000000000009995",
        "insufficient_funds",
        "Insufficient funds (soft)",
        stripe_message="Your card has insufficient funds.",
        advice_code="try_again_later",
        adyen_refusal_code="12",
        adyen_refusal_reason="Not enough balance",
        raw_response="51 : Insufficient funds/over credit limit",
    ),
    _decline(
        "4000000000006975",
        "card_velocity_exceeded",
        "Card velocity exceeded (soft)",
        stripe_message="Your card has exceeded its velocity limit.",
        advice_code="try_again_later",
        adyen_refusal_code="29",
        adyen_refusal_reason="Withdrawal count exceeded",
        raw_response="65 : Exceeds withdrawal count limit",
    ),
    _decline(
        "4000000000000119",
        "processing_error",
        "Processing error at the acquirer (soft); Adyen answers resultCode Error",
        stripe_code="processing_error",
        stripe_message="An error occurred while processing your card. Try again in a little bit.",
        advice_code="try_again_later",
        adyen_result_code="Error",
        adyen_refusal_code="4",
        adyen_refusal_reason="Acquirer Error",
        raw_response="96 : System malfunction",
    ),
    _decline(
        "4000009900000012",
        "do_not_honor",
        "Do not honor (soft)",
        source="simulator",
        adyen_refusal_code="2",
        adyen_refusal_reason="Refused",
        raw_response="05 : Do not honor",
    ),
    _decline(
        "4000009900000020",
        "try_again_later",
        "Try again later (soft)",
        source="simulator",
        advice_code="try_again_later",
        adyen_refusal_code="2",
        adyen_refusal_reason="Refused",
        raw_response="19 : Re-enter transaction",
    ),
    _decline(
        "4000009900000038",
        "issuer_not_available",
        "Issuer not available (soft)",
        source="simulator",
        advice_code="try_again_later",
        adyen_refusal_code="9",
        adyen_refusal_reason="Issuer Unavailable",
        raw_response="91 : Issuer or switch inoperative",
    ),
    # hard declines
    _decline(
        "4000000000009987",
        "lost_card",
        "Lost card (hard)",
        advice_code="do_not_try_again",
        adyen_refusal_code="5",
        adyen_refusal_reason="Blocked Card",
        raw_response="41 : Lost card, pick up",
    ),
    _decline(
        "4000000000009979",
        "stolen_card",
        "Stolen card (hard)",
        advice_code="do_not_try_again",
        adyen_refusal_code="5",
        adyen_refusal_reason="Blocked Card",
        raw_response="43 : Stolen card, pick up",
    ),
    _decline(
        "4000000000000069",
        "expired_card",
        "Expired card (hard)",
        stripe_code="expired_card",
        stripe_message="Your card has expired.",
        stripe_param="exp_month",
        advice_code="do_not_try_again",
        adyen_refusal_code="6",
        adyen_refusal_reason="Expired Card",
        raw_response="54 : Expired card",
    ),
    _decline(
        "4000000000000127",
        "incorrect_cvc",
        "Incorrect CVC (hard)",
        stripe_code="incorrect_cvc",
        stripe_message="Your card's security code is incorrect.",
        stripe_param="cvc",
        advice_code="confirm_card_data",
        adyen_refusal_code="24",
        adyen_refusal_reason="CVC Declined",
        raw_response="N7 : Decline for CVV2 failure",
    ),
    _decline(
        "4100000000000019",
        "fraudulent",
        "Always blocked as fraudulent (hard)",
        advice_code="do_not_try_again",
        adyen_refusal_code="20",
        adyen_refusal_reason="FRAUD",
        raw_response="FRAUD",
    ),
    # 3-D Secure
    TestCard("4000002500003155", "visa", REQUIRES_ACTION, "3-D Secure required"),
    TestCard("4000000000003220", "visa", REQUIRES_ACTION, "3-D Secure 2 required"),
    TestCard("4000000000003063", "visa", REQUIRES_ACTION, "3-D Secure required"),
    # asynchronous and slow outcomes
    TestCard(
        "4000000000005126",
        "visa",
        REFUND_FAILS,
        "Payment approves; refunds of it fail asynchronously",
    ),
    TestCard(
        "4000009900000046",
        "visa",
        SLOW_APPROVE,
        f"Approves after ~{SLOW_CARD_DELAY_S:.0f} s (slow issuer)",
        source="simulator",
    ),
    TestCard(
        "4000009900000053",
        "visa",
        CAPTURE_FAILS,
        "Authorisation approves; the capture fails",
        source="simulator",
    ),
    TestCard(
        "4000009900000079",
        "visa",
        STEP_UP,
        "Declines authentication_required without 3-D Secure; with it, the challenge",
        decline_code="authentication_required",
        adyen_refusal_code="38",
        adyen_refusal_reason="Authentication required",
        raw_response="1A : Additional customer authentication required",
        source="simulator",
    ),
    TestCard(
        "5100009900000018",
        "mastercard",
        DECLINE,
        "Mastercard do_not_honor with merchant advice code 03: do not try again",
        decline_code="do_not_honor",
        adyen_refusal_code="27",
        adyen_refusal_reason="Declined Non Generic",
        raw_response="05 : Do not honor",
        network_advice_code="03",
        source="simulator",
    ),
    # disputes: the payment approves and is disputed ConnectorSettings.dispute_delay_ms after
    # capture (default 2 s); the merchant's answer wins with uncategorized_text
    # "winning_evidence" (apps/psp_simulator/disputes.py)
    TestCard(
        "4000000000000259",
        "visa",
        DISPUTE,
        "Disputed after capture: fraudulent",
        dispute_reason="fraudulent",
    ),
    TestCard(
        "4000000000002685",
        "visa",
        DISPUTE,
        "Disputed after capture: product_not_received",
        dispute_reason="product_not_received",
    ),
    TestCard(
        "4000000000001976",
        "visa",
        INQUIRY,
        "An inquiry after capture: fraudulent",
        dispute_reason="fraudulent",
    ),
    TestCard(
        "4000009900000061",
        "visa",
        DISPUTE,
        "Disputed after capture: duplicate",
        source="simulator",
        dispute_reason="duplicate",
    ),
    TestCard(
        "4000009900000111",
        "visa",
        DISPUTE,
        "Disputed after capture: subscription_canceled",
        source="simulator",
        dispute_reason="subscription_canceled",
    ),
    TestCard(
        "4000009900000087",
        "visa",
        DISPUTE,
        "Disputed after capture: credit_not_processed",
        source="simulator",
        dispute_reason="credit_not_processed",
    ),
    TestCard(
        "4000009900000095",
        "visa",
        DISPUTE,
        "Disputed after capture: general",
        source="simulator",
        dispute_reason="general",
    ),
    TestCard(
        "4000009900000103",
        "visa",
        DISPUTE,
        "Disputed after capture: product_unacceptable",
        source="simulator",
        dispute_reason="product_unacceptable",
    ),
)

CARDS_BY_NUMBER: dict[str, TestCard] = {card.number: card for card in TEST_CARDS}

# A Luhn-invalid number: declined before it reaches an issuer.
INCORRECT_NUMBER = TestCard(
    number="",
    brand="unknown",
    outcome=DECLINE,
    description="Number fails the Luhn check",
    decline_code="incorrect_number",
    stripe_code="incorrect_number",
    stripe_message="Your card number is incorrect.",
    stripe_param="number",
    advice_code="confirm_card_data",
    adyen_refusal_code="8",
    adyen_refusal_reason="Invalid Card Number",
    raw_response="14 : Invalid card number",
)


def luhn_valid(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def brand_of(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if number[:2] in {"34", "37"}:
        return "amex"
    if number[:2] in {"51", "52", "53", "54", "55"} or "2221" <= number[:4] <= "2720":
        return "mastercard"
    if number.startswith("6011") or number.startswith("65"):
        return "discover"
    return "unknown"


def card_for(number: str) -> TestCard:
    """The behaviour of a card number: a table entry, an implicit approval, or incorrect_number."""
    number = number.replace(" ", "")
    known = CARDS_BY_NUMBER.get(number)
    if known is not None:
        return known
    if not luhn_valid(number):
        return INCORRECT_NUMBER
    # the full number is not kept: state and logs only ever need the last four digits
    return TestCard("", brand_of(number), APPROVE, "Any other valid number approves")


# Adyen's short brand codes, as used in paymentMethod.brand and notifications.
ADYEN_BRANDS = {"visa": "visa", "mastercard": "mc", "amex": "amex", "discover": "discover"}
