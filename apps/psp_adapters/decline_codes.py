"""Normalized decline codes (Stripe's vocabulary) and which of them are hard or soft.

Hard: no PSP will approve this card for this payment; failing over would only annoy the issuer
and risk fraud flags. Soft: another PSP, or a later retry, may well approve.
This table is the single source of truth; tests/psp_adapters/test_decline_codes.py pins it.
Codes: https://docs.stripe.com/declines/codes and https://docs.stripe.com/error-codes
"""

HARD = "hard"
SOFT = "soft"

DECLINE_CLASSES: dict[str, str] = {
    # hard: the card or the cardholder is the problem
    "lost_card": HARD,
    "stolen_card": HARD,
    "fraudulent": HARD,
    "merchant_blacklist": HARD,
    "pickup_card": HARD,
    "restricted_card": HARD,
    "expired_card": HARD,
    "incorrect_number": HARD,
    "invalid_number": HARD,
    "invalid_account": HARD,
    "card_not_supported": HARD,
    "currency_not_supported": HARD,
    "transaction_not_allowed": HARD,
    "security_violation": HARD,
    "stop_payment_order": HARD,
    "revocation_of_authorization": HARD,
    "revocation_of_all_authorizations": HARD,
    # wrong card details: the same details fail at every PSP
    "incorrect_cvc": HARD,
    "invalid_cvc": HARD,
    "incorrect_zip": HARD,
    "invalid_expiry_month": HARD,
    "invalid_expiry_year": HARD,
    "pin_try_exceeded": HARD,
    "new_account_information_available": HARD,
    # the issuer said so, or retrying would be a duplicate or malformed request
    "do_not_try_again": HARD,
    "duplicate_transaction": HARD,
    "invalid_amount": HARD,
    "not_permitted": HARD,
    "service_not_allowed": HARD,
    # soft: the issuer or the path may say yes another time or through another acquirer
    "insufficient_funds": SOFT,
    "do_not_honor": SOFT,
    "generic_decline": SOFT,
    "processing_error": SOFT,
    "issuer_not_available": SOFT,
    "try_again_later": SOFT,
    "reenter_transaction": SOFT,
    "card_velocity_exceeded": SOFT,
    "withdrawal_count_limit_exceeded": SOFT,
    "card_decline_rate_limit_exceeded": SOFT,
    "authentication_required": SOFT,
    "approve_with_id": SOFT,
    "call_issuer": SOFT,
    "no_action_taken": SOFT,
    "incorrect_pin": SOFT,
    "offline_pin_required": SOFT,
    "online_or_offline_pin_required": SOFT,
}


def decline_class(code: str) -> str:
    """Unknown codes are treated as soft: safer to try another PSP than to lose a sale,
    and a hard decline there will stop the chain anyway."""
    return DECLINE_CLASSES.get(code, SOFT)


def is_hard(code: str) -> bool:
    return decline_class(code) == HARD
