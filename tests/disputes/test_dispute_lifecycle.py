"""Disputes end to end through the simulator, in both dialects: opened by the PSP, answered
by the merchant through our API, decided by the simulator's rule, the money following."""

from __future__ import annotations

import base64

import pytest

from apps.disputes.models import Dispute, DisputeNotification
from apps.events import inbound, relay
from apps.events.models import Event, OutboxEvent, WebhookDelivery
from apps.intents.models import PaymentIntent
from apps.ledger import chart
from apps.ledger import selectors as ledger_selectors
from apps.ledger.models import JournalTransaction
from tests.disputes.conftest import WINNING, assert_books_hold
from tests.factories import WebhookEndpointFactory

FEE = 1500  # the default dispute fee, 15.00 EUR


def merchant_pending(merchant) -> int:
    return ledger_selectors.account_balance(
        merchant_id=merchant.pk, livemode=False, currency="eur", code=chart.MERCHANT_PENDING
    )


def paid(pay, connector, amount=2000, number="4242424242424242") -> PaymentIntent:
    response = pay(number=number, amount=amount, currency="eur")
    assert response.status_code == 200, response.content
    intent = PaymentIntent.objects.get(public_id=response.json()["id"])
    assert intent.connector_id == connector.pk and intent.status == "succeeded"
    return intent


def events(dispute, event_type) -> int:
    return OutboxEvent.objects.filter(object_id=dispute.public_id, event_type=event_type).count()


def counted(psp: str, event: str) -> float:
    """pp_disputes on /metrics (apps.core.metrics)."""
    from prometheus_client import REGISTRY

    labels = {"psp": psp, "event": event, "reason": "product_not_received"}
    return REGISTRY.get_sample_value("pp_disputes_total", labels) or 0.0


@pytest.mark.parametrize("dialect", ["stripe", "adyen"])
def test_chargeback_answered_with_winning_evidence_is_won_and_the_funds_come_back(
    request, api, merchant, pay, dialect, django_capture_on_commit_callbacks
):
    connector = request.getfixturevalue(f"{dialect}_only")
    side = request.getfixturevalue(f"{dialect}_side")
    intent = paid(pay, connector)
    before = merchant_pending(merchant)
    opened_before, won_before = counted(dialect, "opened"), counted(dialect, "won")

    side.open(intent, reason="product_not_received")
    with django_capture_on_commit_callbacks(execute=True):
        side.deliver(2)  # created + funds withdrawn / NOTIFICATION_OF_CHARGEBACK + CHARGEBACK
    assert counted(dialect, "opened") == opened_before + 1
    dispute = Dispute.objects.get(intent=intent)
    assert (dispute.stage, dispute.status) == ("chargeback", "needs_response")
    assert dispute.reason == "product_not_received" and dispute.network_reason_code == "13.1"
    assert dispute.evidence_due_by is not None and dispute.amount == 2000
    assert merchant_pending(merchant) == before - 2000 - FEE
    intent = PaymentIntent.objects.get(pk=intent.pk)
    assert intent.disputed and intent.amount_disputed == 2000
    assert_books_hold(merchant)

    # no refund while the dispute is open
    refused = api.post("/v1/refunds", {"payment_intent": intent.public_id}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "charge_disputed"

    staged = api.post(
        f"/v1/disputes/{dispute.public_id}",
        {"evidence": {"uncategorized_text": WINNING, "product_description": "A lamp"}},
        format="json",
    )
    assert staged.status_code == 200, staged.content
    assert staged.json()["status"] == "needs_response"
    submitted = api.post(f"/v1/disputes/{dispute.public_id}", {"submit": True}, format="json")
    assert submitted.status_code == 200, submitted.content
    assert submitted.json()["status"] == "under_review"
    assert submitted.json()["evidence"]["product_description"] == "A lamp"

    # Stripe: updated (under review), closed (won), funds reinstated; Adyen: CHARGEBACK_REVERSED
    with django_capture_on_commit_callbacks(execute=True):
        side.deliver(3 if dialect == "stripe" else 1)
    dispute = Dispute.objects.get(pk=dispute.pk)
    assert dispute.status == "won" and dispute.closed_at is not None
    assert counted(dialect, "won") == won_before + 1
    assert merchant_pending(merchant) == before - FEE  # the amount back, not the fee
    intent = PaymentIntent.objects.get(pk=intent.pk)
    assert not intent.disputed and intent.amount_disputed == 0
    kinds = sorted(
        JournalTransaction.objects.filter(source_id=dispute.public_id).values_list(
            "kind", flat=True
        )
    )
    assert kinds == ["chargeback", "chargeback", "chargeback_reversal"]
    for name in ("dispute.created", "dispute.funds_withdrawn", "dispute.funds_reinstated"):
        assert events(dispute, name) == 1, name
    assert events(dispute, "dispute.closed") == 1
    assert_books_hold(merchant)


@pytest.mark.parametrize("dialect", ["stripe", "adyen"])
def test_evidence_that_does_not_win_loses_and_the_money_stays_withdrawn(
    request, api, merchant, pay, dialect
):
    connector = request.getfixturevalue(f"{dialect}_only")
    side = request.getfixturevalue(f"{dialect}_side")
    intent = paid(pay, connector)
    before = merchant_pending(merchant)
    side.open(intent)
    side.deliver(2)
    dispute = Dispute.objects.get(intent=intent)
    response = api.post(
        f"/v1/disputes/{dispute.public_id}",
        {"evidence": {"uncategorized_text": "we shipped it"}, "submit": True},
        format="json",
    )
    assert response.status_code == 200, response.content
    side.deliver(2 if dialect == "stripe" else 1)  # updated + closed / DEFENSE_PERIOD_ENDED
    dispute = Dispute.objects.get(pk=dispute.pk)
    assert dispute.status == "lost"
    assert merchant_pending(merchant) == before - 2000 - FEE
    intent = PaymentIntent.objects.get(pk=intent.pk)
    assert intent.amount_disputed == 2000 and not intent.disputed
    # after a lost dispute nothing is left to refund
    refused = api.post("/v1/refunds", {"payment_intent": intent.public_id}, format="json")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "charge_already_refunded"
    assert_books_hold(merchant)


@pytest.mark.parametrize("dialect", ["stripe", "adyen"])
def test_accepting_closes_the_dispute_as_accepted(request, api, merchant, pay, dialect):
    connector = request.getfixturevalue(f"{dialect}_only")
    side = request.getfixturevalue(f"{dialect}_side")
    intent = paid(pay, connector)
    side.open(intent)
    side.deliver(2)
    dispute = Dispute.objects.get(intent=intent)
    response = api.post(f"/v1/disputes/{dispute.public_id}/close", format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "accepted"
    side.deliver(1)  # the PSP's closing notification: recorded, cannot move it
    dispute = Dispute.objects.get(pk=dispute.pk)
    assert dispute.status == "accepted"
    assert events(dispute, "dispute.closed") == 1
    # evidence on a closed dispute, a second acceptance: refused, nothing changes
    again = api.post(f"/v1/disputes/{dispute.public_id}/close", format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "dispute_closed"
    late = api.post(
        f"/v1/disputes/{dispute.public_id}",
        {"evidence": {"uncategorized_text": WINNING}},
        format="json",
    )
    assert late.status_code == 409 and late.json()["error"]["code"] == "dispute_closed"
    assert late.json()["error"]["param"] == "evidence"
    assert Dispute.objects.get(pk=dispute.pk).evidence == {}
    assert_books_hold(merchant)


def test_inquiry_escalates_to_a_chargeback(api, merchant, pay, stripe_only, stripe_side, control):
    intent = paid(pay, stripe_only)
    before = merchant_pending(merchant)
    opened = stripe_side.open(intent, inquiry=True)
    stripe_side.deliver(1)
    dispute = Dispute.objects.get(intent=intent)
    assert (dispute.stage, dispute.status) == ("inquiry", "warning_needs_response")
    assert merchant_pending(merchant) == before  # no money moves on an inquiry
    control.dispute_action(opened["id"], "escalate")
    stripe_side.deliver(2)
    dispute = Dispute.objects.get(pk=dispute.pk)
    assert (dispute.stage, dispute.status) == ("chargeback", "needs_response")
    assert merchant_pending(merchant) == before - 2000 - FEE
    assert_books_hold(merchant)


def test_adyen_second_chargeback_reopens_and_prearbitration_is_lost(
    api, merchant, pay, adyen_only, adyen_side, control
):
    intent = paid(pay, adyen_only)
    before = merchant_pending(merchant)
    opened = adyen_side.open(intent)
    adyen_side.deliver(2)
    dispute = Dispute.objects.get(intent=intent)
    api.post(
        f"/v1/disputes/{dispute.public_id}",
        {"evidence": {"uncategorized_text": WINNING}, "submit": True},
        format="json",
    )
    adyen_side.deliver(1)  # CHARGEBACK_REVERSED
    assert Dispute.objects.get(pk=dispute.pk).status == "won"
    assert merchant_pending(merchant) == before - FEE

    control.dispute_action(opened["id"], "second_chargeback")
    adyen_side.deliver(1)
    dispute = Dispute.objects.get(pk=dispute.pk)
    assert (dispute.stage, dispute.status) == ("pre_arbitration", "needs_response")
    assert dispute.closed_at is None
    assert merchant_pending(merchant) == before - 2000 - 2 * FEE
    assert PaymentIntent.objects.get(pk=intent.pk).disputed
    # the merchant may answer the new stage once
    response = api.post(
        f"/v1/disputes/{dispute.public_id}",
        {"evidence": {"uncategorized_text": "still shipped"}, "submit": True},
        format="json",
    )
    assert response.status_code == 200, response.content
    adyen_side.deliver(1)  # PREARBITRATION_LOST
    dispute = Dispute.objects.get(pk=dispute.pk)
    assert (dispute.stage, dispute.status) == ("pre_arbitration", "lost")
    assert merchant_pending(merchant) == before - 2000 - 2 * FEE
    assert_books_hold(merchant)


def test_a_reversal_before_its_chargeback_nets_to_nothing_but_the_fee(
    merchant, pay, adyen_only, adyen_side, control
):
    intent = paid(pay, adyen_only)
    before = merchant_pending(merchant)
    opened = adyen_side.open(intent)
    control.dispute_action(opened["id"], "win")
    # NOTIFICATION_OF_CHARGEBACK, CHARGEBACK, CHARGEBACK_REVERSED: the reversal arrives first
    rows = adyen_side.deliver(3, order=[2, 0, 1])
    dispute = Dispute.objects.get(intent=intent)
    assert dispute.status == "won"  # never moved back by the older ones
    assert merchant_pending(merchant) == before - FEE
    assert not dispute.funds_withdrawn
    assert PaymentIntent.objects.get(pk=intent.pk).amount_disputed == 0
    results = [r.outcome[-1]["result"] for r in rows]
    assert results[0] == "applied" and "ignored" in results[1:]
    assert DisputeNotification.objects.filter(dispute=dispute).count() == 3
    assert_books_hold(merchant)


@pytest.mark.parametrize("dialect", ["stripe", "adyen"])
def test_duplicates_are_applied_once(request, merchant, pay, dialect):
    connector = request.getfixturevalue(f"{dialect}_only")
    side = request.getfixturevalue(f"{dialect}_side")
    intent = paid(pay, connector)
    before = merchant_pending(merchant)
    side.open(intent)
    batch = side.collect(2)
    for received in batch + batch:
        row = side.post(received)
        inbound.inbound_webhook_process(webhook_id=row.pk)
    assert merchant_pending(merchant) == before - 2000 - FEE
    dispute = Dispute.objects.get(intent=intent)
    assert events(dispute, "dispute.funds_withdrawn") == 1
    assert_books_hold(merchant)


@pytest.mark.parametrize(
    "number, reason, stage",
    [
        ("4000000000000259", "fraudulent", "chargeback"),
        ("4000009900000061", "duplicate", "chargeback"),
        ("4000000000001976", "fraudulent", "inquiry"),
    ],
)
def test_dispute_test_cards_are_disputed_after_capture(
    merchant, pay, adyen_only, adyen_side, control, number, reason, stage
):
    control.update_settings(adyen_side.name, dispute_delay_ms=0)
    intent = paid(pay, adyen_only, number=number)
    adyen_side.deliver(2 if stage == "chargeback" else 1)
    dispute = Dispute.objects.get(intent=intent)
    assert (dispute.stage, dispute.reason) == (stage, reason)
    assert dispute.psp_event_code in ("CHARGEBACK", "REQUEST_FOR_INFORMATION")
    assert dispute.psp_status == "Undefended"
    assert_books_hold(merchant)


def test_the_psp_closing_an_unanswered_dispute_marks_it_lost(
    merchant, pay, stripe_only, stripe_side, control
):
    intent = paid(pay, stripe_only)
    opened = stripe_side.open(intent)
    stripe_side.deliver(2)
    control.dispute_action(opened["id"], "expire")
    stripe_side.deliver(1)
    dispute = Dispute.objects.get(intent=intent)
    assert dispute.status == "lost" and dispute.psp_event_code == "charge.dispute.closed"
    assert events(dispute, "dispute.closed") == 1
    assert_books_hold(merchant)


def test_adyen_takes_evidence_documents_through_its_dispute_service(
    api, merchant, pay, adyen_only, adyen_side, control
):
    intent = paid(pay, adyen_only)
    opened = adyen_side.open(intent)
    adyen_side.deliver(2)
    dispute = Dispute.objects.get(intent=intent)
    pdf = b"%PDF-1.4\n(delivery signed: winning_evidence)\n%%EOF\n"
    file = api.post(
        "/v1/files",
        {"purpose": "dispute_evidence", "file": base64.b64encode(pdf).decode()},
        format="json",
    ).json()["id"]
    response = api.post(
        f"/v1/disputes/{dispute.public_id}",
        {"evidence": {"shipping_documentation": file}, "submit": True},
        format="json",
    )
    assert response.status_code == 200, response.content
    (held,) = control.disputes(adyen_side.name, payment_id=intent.psp_reference)
    assert held["id"] == opened["id"] and held["documents"] == 1 and held["submitted"]
    adyen_side.deliver(1)  # the document won it: CHARGEBACK_REVERSED
    assert Dispute.objects.get(pk=dispute.pk).status == "won"
    assert_books_hold(merchant)


def test_dispute_events_reach_the_merchants_webhook_endpoints(
    merchant, system_actor, pay, stripe_only, stripe_side
):
    endpoint = WebhookEndpointFactory(
        merchant=merchant, actor=system_actor, enabled_events=["dispute.*"]
    )
    intent = paid(pay, stripe_only)
    stripe_side.open(intent)
    stripe_side.deliver(2)
    relay.outbox_relay()
    dispute = Dispute.objects.get(intent=intent)
    types = set(
        Event.objects.filter(merchant=merchant, object_id=dispute.public_id).values_list(
            "type", flat=True
        )
    )
    assert types == {"dispute.created", "dispute.funds_withdrawn"}
    delivered = WebhookDelivery.objects.filter(endpoint=endpoint).values_list(
        "event__type", flat=True
    )
    assert sorted(delivered) == ["dispute.created", "dispute.funds_withdrawn"]


def test_a_win_that_returns_the_fee_gives_the_fee_back_too(
    api, merchant, pay, stripe_only, stripe_side
):
    intent = paid(pay, stripe_only)
    before = merchant_pending(merchant)
    stripe_side.open(intent, fee_returned_on_win=True)
    stripe_side.deliver(2)
    assert merchant_pending(merchant) == before - 2000 - FEE
    dispute = Dispute.objects.get(intent=intent)
    body = {"evidence": {"uncategorized_text": WINNING}, "submit": True}
    assert api.post(f"/v1/disputes/{dispute.public_id}", body, format="json").status_code == 200
    stripe_side.deliver(3)  # updated, closed (won), funds reinstated with the fee
    dispute = Dispute.objects.get(pk=dispute.pk)
    assert dispute.status == "won" and dispute.fees_returned == FEE
    assert merchant_pending(merchant) == before
    assert api.get(f"/v1/disputes/{dispute.public_id}").json()["balance"]["fees"] == 0
    assert_books_hold(merchant)
