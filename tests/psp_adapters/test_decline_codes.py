"""Pins the hard/soft decline table: changing a class changes failover behaviour, so it must be a
deliberate edit here as well."""

from apps.psp_adapters.decline_codes import DECLINE_CLASSES, HARD, SOFT, decline_class, is_hard

EXPECTED_HARD = {
    "lost_card",
    "stolen_card",
    "fraudulent",
    "merchant_blacklist",
    "pickup_card",
    "restricted_card",
    "expired_card",
    "incorrect_number",
    "invalid_number",
    "invalid_account",
    "card_not_supported",
    "currency_not_supported",
    "transaction_not_allowed",
    "security_violation",
    "stop_payment_order",
    "revocation_of_authorization",
    "revocation_of_all_authorizations",
    "incorrect_cvc",
    "invalid_cvc",
    "incorrect_zip",
    "invalid_expiry_month",
    "invalid_expiry_year",
    "pin_try_exceeded",
    "new_account_information_available",
    "do_not_try_again",
    "duplicate_transaction",
    "invalid_amount",
    "not_permitted",
    "service_not_allowed",
}

EXPECTED_SOFT = {
    "insufficient_funds",
    "do_not_honor",
    "generic_decline",
    "processing_error",
    "issuer_not_available",
    "try_again_later",
    "reenter_transaction",
    "card_velocity_exceeded",
    "withdrawal_count_limit_exceeded",
    "card_decline_rate_limit_exceeded",
    "authentication_required",
    "approve_with_id",
    "call_issuer",
    "no_action_taken",
    "incorrect_pin",
    "offline_pin_required",
    "online_or_offline_pin_required",
}


def test_the_table_is_exactly_the_pinned_hard_and_soft_sets():
    assert {code for code, cls in DECLINE_CLASSES.items() if cls == HARD} == EXPECTED_HARD
    assert {code for code, cls in DECLINE_CLASSES.items() if cls == SOFT} == EXPECTED_SOFT
    assert set(DECLINE_CLASSES.values()) == {HARD, SOFT}


def test_hard_codes_are_hard_and_soft_codes_are_soft():
    assert all(is_hard(code) for code in EXPECTED_HARD)
    assert not any(is_hard(code) for code in EXPECTED_SOFT)


def test_unknown_codes_are_soft_so_the_next_psp_gets_a_chance():
    assert decline_class("a_code_no_psp_has_sent_yet") == SOFT
    assert decline_class("") == SOFT
    assert is_hard("a_code_no_psp_has_sent_yet") is False
