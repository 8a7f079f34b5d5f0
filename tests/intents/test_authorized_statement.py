"""tx B of an approved authorization in one statement (apps/intents/authorized_statement.py):
it writes exactly what the general path would, and only where the django-fsm state machine
allows it, because its allowed states are read from the transition itself."""

import pytest

from apps.events.models import OutboxEvent
from apps.intents.models import IntentStatus, PaymentAttempt, PaymentIntent
from apps.intents.representations import intent_representation
from apps.intents.services import confirm_apply, confirm_plan
from apps.psp_adapters.contract import Outcome, PSPResult
from tests.factories import PaymentIntentFactory

TRANSITION = {"automatic": PaymentIntent.succeed, "manual": PaymentIntent.authorize}


def _pending_again(capture_method: str, merchant) -> PaymentAttempt:
    """A payment at the moment its PSP answers: tx A done (the attempt pending, the intent
    processing the authorization), the PSP not called."""
    from apps.core.audit import Actor

    intent = PaymentIntentFactory(merchant=merchant, capture_method=capture_method)
    planned = confirm_plan._confirm_begin(
        intent=intent, actor=Actor.system("test"), payment_method=None
    )
    return planned.attempt


def _approved() -> PSPResult:
    return PSPResult(outcome=Outcome.APPROVED, psp_reference="pi_sim_statement", http_status=200)


@pytest.mark.parametrize("capture_method", ["automatic", "manual"])
@pytest.mark.parametrize("status", IntentStatus.values)
def test_it_writes_only_where_the_state_machine_allows(
    status, capture_method, merchant, stripe_connector
):
    attempt = _pending_again(capture_method, merchant)
    # meanwhile the row moved to `status` (the in-memory intent is still processing)
    PaymentIntent.objects.filter(pk=attempt.intent_id).update(status=status)
    events_before = OutboxEvent.objects.filter(object_id=attempt.intent.public_id).count()

    written = confirm_apply._authorized_at_once(attempt, _approved())

    allows = TRANSITION[capture_method]._django_fsm.has_transition(status)
    row = PaymentIntent.objects.get(pk=attempt.intent_id)
    attempt_row = PaymentAttempt.objects.get(pk=attempt.pk)
    events = OutboxEvent.objects.filter(object_id=row.public_id).count()
    if allows:
        assert written is not None
        assert row.status == ("succeeded" if capture_method == "automatic" else "requires_capture")
        assert attempt_row.outcome == "approved" and attempt_row.psp_reference == "pi_sim_statement"
        assert events == events_before + 1
    else:
        assert written is None
        assert row.status == status  # nothing written
        assert attempt_row.outcome == "pending"
        assert events == events_before


@pytest.mark.parametrize("capture_method", ["automatic", "manual"])
def test_the_row_is_what_the_general_path_would_have_written(
    capture_method, merchant, stripe_connector
):
    attempt = _pending_again(capture_method, merchant)

    intent, _ = confirm_apply._authorized_at_once(attempt, _approved())

    row = PaymentIntent.objects.select_related("payment_method", "connector").get(pk=intent.pk)
    assert intent_representation(row) == intent_representation(intent)
    assert row.pending_operation == "" and row.connector_id == attempt.connector_id
    assert row.authorized_at is not None
    event = OutboxEvent.objects.filter(object_id=row.public_id).order_by("-sequence").first()
    assert event.payload == intent_representation(row)
    assert event.event_type == (
        "payment_intent.succeeded"
        if capture_method == "automatic"
        else "payment_intent.amount_capturable_updated"
    )


def test_an_attempt_answered_meanwhile_is_left_to_whoever_answered(merchant, stripe_connector):
    attempt = _pending_again("automatic", merchant)
    PaymentAttempt.objects.filter(pk=attempt.pk).update(outcome="approved")

    assert confirm_apply._authorized_at_once(attempt, _approved()) is None
    assert PaymentIntent.objects.get(pk=attempt.intent_id).status == "processing"
