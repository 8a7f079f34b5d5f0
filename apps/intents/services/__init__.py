"""Checkout-plane services, one module per part of a payment's life:

- `create`: a payment intent, validated before anything is written;
- `confirm`: the confirm's entry points and the authorization through the connector gateway;
  `confirm_plan`: tx A (Radar, routing, the first attempt; create+confirm inserts the intent in
  tx A's one statement); `confirm_apply`: tx B (the result, failover in one SQL statement,
  apps/intents/failover_statement.py, an approval in one statement);
- `inquiries`: unknown outcomes resolved by inquiry (never by a second charge), and the
  authorization completed after 3-D Secure;
- `operations`: capture and cancel, the sweep that resolves stalled ones, authorization expiry;
- `refunds`: refunds, reserved first, sent with their own key, applied only forward; a lost
  answer resolved by inquiry (never by a second refund);
- `common`: the intent lock, the state error, the outbox record of every change.

The public functions are importable from `apps.intents.services` as before."""

from apps.intents.services.common import CANCELLATION_REASONS, REFUND_REASONS
from apps.intents.services.confirm import intent_confirm, intent_create_and_confirm
from apps.intents.services.create import intent_create, intent_prepare
from apps.intents.services.disputes import (
    DisputeTake,
    intent_dispute_mark,
    intent_dispute_return,
    intent_dispute_take,
    intent_fraud_notice_record,
)
from apps.intents.services.inquiries import (
    attempt_inquire,
    attempts_inquire_due,
    intent_refresh_action,
    intent_return_from_action,
)
from apps.intents.services.operations import (
    intent_cancel,
    intent_capture,
    intent_operation_inquire,
    intents_expire_authorizations,
    intents_resolve_stalled_operations,
)
from apps.intents.services.refunds import (
    refund_apply_result,
    refund_create,
    refund_inquire,
    refund_submit,
    refunds_inquire_due,
    refunds_resubmit_pending,
)

__all__ = [
    "CANCELLATION_REASONS",
    "REFUND_REASONS",
    "DisputeTake",
    "attempt_inquire",
    "attempts_inquire_due",
    "intent_cancel",
    "intent_capture",
    "intent_confirm",
    "intent_create",
    "intent_create_and_confirm",
    "intent_dispute_mark",
    "intent_dispute_return",
    "intent_dispute_take",
    "intent_fraud_notice_record",
    "intent_operation_inquire",
    "intent_prepare",
    "intent_refresh_action",
    "intent_return_from_action",
    "intents_expire_authorizations",
    "intents_resolve_stalled_operations",
    "refund_apply_result",
    "refund_create",
    "refund_inquire",
    "refund_submit",
    "refunds_inquire_due",
    "refunds_resubmit_pending",
]
