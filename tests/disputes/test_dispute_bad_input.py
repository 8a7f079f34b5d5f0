"""Bad input, each a clear error with its own code and param (or, from a PSP, an
acknowledgment with the notification parked for ops), no state change, no ledger effect."""

from __future__ import annotations

import base64

import pytest

from apps.core.audit import Actor
from apps.disputes import selectors as dispute_selectors
from apps.disputes import services as dispute_services
from apps.disputes.models import Dispute, DisputeNotification, EvidenceFile
from apps.events import inbound
from apps.events.models import InboundWebhook
from apps.intents.models import PaymentIntent
from apps.ledger import chart
from apps.ledger import selectors as ledger_selectors
from apps.ledger.models import JournalTransaction
from tests.disputes.conftest import WINNING, assert_books_hold
from tests.disputes.test_dispute_lifecycle import merchant_pending, paid
from tests.events.psp_payloads import adyen_item, adyen_request, stripe_event, stripe_request
from tests.factories import ApiKeyFactory

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def upload(api, content: bytes, filename="evidence.pdf", purpose="dispute_evidence"):
    return api.post(
        "/v1/files",
        {"purpose": purpose, "file": base64.b64encode(content).decode(), "filename": filename},
        format="json",
    )


def error(response, status: int, code: str, param: str | None = None) -> None:
    assert response.status_code == status, response.content
    body = response.json()["error"]
    assert body["code"] == code, body
    if param is not None:
        assert body["param"] == param, body


@pytest.fixture
def open_dispute(pay, stripe_only, stripe_side):
    intent = paid(pay, stripe_only)
    stripe_side.open(intent)
    stripe_side.deliver(2)
    return Dispute.objects.get(intent=intent)


def test_files_are_checked_by_content_size_and_merchant(api, merchant, other_merchant):
    good = upload(api, PNG, filename="receipt.pdf")  # the name does not decide the type
    assert good.status_code == 200, good.content
    assert good.json()["type"] == "png" and good.json()["size"] == len(PNG)
    stored = EvidenceFile.objects.get(public_id=good.json()["id"])
    assert stored.content.read() == PNG and stored.merchant_id == merchant.pk
    error(upload(api, b"MZ\x90\x00 not a document", filename="a.pdf"), 400, "file_type_invalid")
    error(upload(api, b"%PDF-" + b"0" * 700_000), 400, "file_too_large", "file")
    error(upload(api, PDF, purpose="identity_document"), 400, "parameter_invalid_choice", "purpose")
    bad_base64 = api.post(
        "/v1/files", {"purpose": "dispute_evidence", "file": "***"}, format="json"
    )
    error(bad_base64, 400, "file_invalid", "file")
    assert EvidenceFile.objects.count() == 1


def test_evidence_refusals_change_nothing(api, merchant, other_merchant, open_dispute):
    dispute = open_dispute
    url = f"/v1/disputes/{dispute.public_id}"
    theirs = dispute_services.evidence_file_create(
        merchant=other_merchant,
        livemode=False,
        purpose="dispute_evidence",
        filename="x.pdf",
        content=PDF,
        actor=Actor.system("tests"),
    )
    error(
        api.post(url, {"evidence": {"receipt": theirs.public_id}}, format="json"),
        400,
        "evidence_file_invalid",
        "evidence[receipt]",
    )
    too_long = {"product_description": "x" * 80_000, "uncategorized_text": "y" * 80_000}
    error(api.post(url, {"evidence": too_long}, format="json"), 400, "evidence_too_large")
    error(
        api.post(url, {"evidence": {"favourite_colour": "blue"}}, format="json"),
        400,
        "parameter_unknown",
        "evidence[favourite_colour]",
    )
    error(
        api.post(url, {"evidence": {"uncategorized_text": 5}}, format="json"),
        400,
        "parameter_invalid_type",
    )
    error(
        api.post("/v1/disputes/dp_nope", {"submit": True}, format="json"), 404, "resource_missing"
    )
    error(api.get("/v1/disputes/dp_nope"), 404, "resource_missing", "id")
    dispute = Dispute.objects.get(pk=dispute.pk)
    assert dispute.evidence == {} and dispute.status == "needs_response"

    # the merchant's own file is taken
    mine = upload(api, PDF).json()["id"]
    staged = api.post(url, {"evidence": {"receipt": mine}}, format="json")
    assert staged.json()["evidence"]["receipt"] == mine


def test_a_second_submission_and_accept_after_submit_are_refused(api, merchant, open_dispute):
    url = f"/v1/disputes/{open_dispute.public_id}"
    first = api.post(
        url, {"evidence": {"uncategorized_text": WINNING}, "submit": True}, format="json"
    )
    assert first.status_code == 200, first.content
    error(
        api.post(url, {"submit": True}, format="json"), 409, "dispute_already_submitted", "submit"
    )
    error(api.post(f"{url}/close", format="json"), 409, "dispute_already_submitted")
    assert Dispute.objects.get(pk=open_dispute.pk).evidence_submission_count == 1


def test_another_merchants_dispute_is_unknown(api, other_merchant, open_dispute):
    key = ApiKeyFactory(merchant=other_merchant, kind="secret", actor=Actor.system("t")).raw_key
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    error(api.get(f"/v1/disputes/{open_dispute.public_id}"), 404, "resource_missing")
    assert api.get("/v1/disputes").json()["data"] == []


def test_a_notification_for_an_unknown_payment_is_acknowledged_and_parked(
    client, merchant, stripe_connector, enqueued
):
    event = stripe_event(
        "charge.dispute.created",
        {
            "id": "du_unknown",
            "object": "dispute",
            "amount": 1000,
            "currency": "eur",
            "payment_intent": "pi_we_never_saw",
            "reason": "fraudulent",
            "status": "needs_response",
        },
    )
    body, headers = stripe_request(event)
    response = client.post(
        f"/webhooks/psp/{stripe_connector.public_id}",
        body,
        content_type="application/json",
        **headers,
    )
    assert response.status_code == 200
    row = InboundWebhook.objects.order_by("-id").first()
    inbound.inbound_webhook_process(webhook_id=row.pk)
    row.refresh_from_db()
    assert row.status == "processed" and "parked" in row.outcome[-1]["reason"]
    parked = list(dispute_selectors.parked_notifications())
    assert [p.psp_dispute_id for p in parked] == ["du_unknown"]
    assert not Dispute.objects.exists() and not JournalTransaction.objects.exists()


def test_malformed_or_unsigned_notifications_are_refused_before_anything(
    client, merchant, stripe_connector, enqueued
):
    url = f"/webhooks/psp/{stripe_connector.public_id}"
    broken = client.post(url, b"{not json", content_type="application/json")
    error(broken, 400, "webhook_payload_invalid")
    event = stripe_event("charge.dispute.created", {"id": "du_1", "object": "dispute"})
    body, _ = stripe_request(event)
    error(client.post(url, body, content_type="application/json"), 400, "webhook_signature_invalid")
    body, headers = stripe_request(event, secret="whsec_wrong")
    error(
        client.post(url, body, content_type="application/json", **headers),
        400,
        "webhook_signature_invalid",
    )
    assert not DisputeNotification.objects.exists() and not Dispute.objects.exists()


def test_a_fraud_notification_is_recorded_on_the_payment_without_a_dispute(
    client, merchant, pay, adyen_only, enqueued
):
    intent = paid(pay, adyen_only)
    item = adyen_item(
        "NOTIFICATION_OF_FRAUD", psp_reference="FRAUD0001", original_reference=intent.psp_reference
    )
    response = client.post(
        f"/webhooks/psp/{adyen_only.public_id}",
        adyen_request(item),
        content_type="application/json",
    )
    assert response.status_code == 200
    inbound.inbound_webhook_process(webhook_id=InboundWebhook.objects.order_by("-id")[0].pk)
    intent = PaymentIntent.objects.get(pk=intent.pk)
    assert intent.fraud_notified_at is not None and not intent.disputed
    assert not Dispute.objects.exists()
    assert DisputeNotification.objects.get().result == "informational"


def test_a_psp_taking_more_than_is_left_after_a_refund_is_the_platforms_loss(
    api, client, merchant, pay, stripe_only, enqueued
):
    intent = paid(pay, stripe_only, amount=3000)
    api.post("/v1/refunds", {"payment_intent": intent.public_id, "amount": 1000}, format="json")
    before = merchant_pending(merchant)
    dispute_object = {
        "id": "du_whole",
        "object": "dispute",
        "amount": 3000,
        "currency": "eur",
        "payment_intent": intent.psp_reference,
        "reason": "fraudulent",
        "status": "needs_response",
        "evidence_details": {"due_by": 2_000_000_000},
    }
    for event_type in ("charge.dispute.created", "charge.dispute.funds_withdrawn"):
        body, headers = stripe_request(stripe_event(event_type, dispute_object))
        client.post(
            f"/webhooks/psp/{stripe_only.public_id}",
            body,
            content_type="application/json",
            **headers,
        )
        inbound.inbound_webhook_process(webhook_id=InboundWebhook.objects.order_by("-id")[0].pk)
    dispute = Dispute.objects.get(psp_dispute_id="du_whole")
    assert (dispute.amount_taken, dispute.amount_uncovered) == (2000, 1000)
    assert merchant_pending(merchant) == before - 2000 - 1500
    losses = ledger_selectors.account_balance(
        merchant_id=merchant.pk, livemode=False, currency="eur", code=chart.DISPUTE_LOSSES
    )
    assert losses == 1000
    assert_books_hold(merchant)


def test_a_parked_notification_applies_when_ops_reprocess_it(
    client, merchant, pay, stripe_only, enqueued
):
    intent = paid(pay, stripe_only)
    dispute_object = {
        "id": "du_later",
        "object": "dispute",
        "amount": 2000,
        "currency": "eur",
        "payment_intent": "pi_not_yet_known",
        "reason": "fraudulent",
        "status": "needs_response",
    }
    body, headers = stripe_request(stripe_event("charge.dispute.created", dispute_object))
    client.post(
        f"/webhooks/psp/{stripe_only.public_id}", body, content_type="application/json", **headers
    )
    row = InboundWebhook.objects.order_by("-id")[0]
    inbound.inbound_webhook_process(webhook_id=row.pk)
    assert dispute_selectors.parked_notifications().count() == 1
    # ops find the payment under that reference (say, the PSP's reference was re-keyed)
    PaymentIntent.objects.filter(pk=intent.pk).update(psp_reference="pi_not_yet_known")
    intent.attempts.update(psp_reference="pi_not_yet_known")
    inbound.inbound_webhook_reprocess(webhook=row, actor=Actor.system("ops"))
    assert dispute_selectors.parked_notifications().count() == 0
    assert Dispute.objects.get(psp_dispute_id="du_later").intent_id == intent.pk


@pytest.mark.parametrize("dialect", ["stripe", "adyen"])
def test_a_psp_refusing_the_answer_is_a_502_and_it_can_be_sent_again(
    request, api, merchant, pay, control, dialect
):
    connector = request.getfixturevalue(f"{dialect}_only")
    side = request.getfixturevalue(f"{dialect}_side")
    intent = paid(pay, connector)
    side.open(intent)
    side.deliver(2)
    dispute = Dispute.objects.get(intent=intent)
    url = f"/v1/disputes/{dispute.public_id}"
    control.set_faults(
        side.name, {"rejected_rate": 1.0, "rejected_status": 400, "operations": ["dispute"]}
    )
    body = {"evidence": {"uncategorized_text": WINNING}, "submit": True}
    error(api.post(url, body, format="json"), 502, "dispute_psp_error", "submit")
    dispute = Dispute.objects.get(pk=dispute.pk)
    assert dispute.status == "needs_response" and dispute.evidence_submission_count == 0
    assert dispute.evidence == {"uncategorized_text": WINNING}  # staged, not submitted
    control.set_faults(side.name, {}, replace=True)
    assert api.post(url, {"submit": True}, format="json").status_code == 200
    assert Dispute.objects.get(pk=dispute.pk).status == "under_review"


def test_odd_values_in_a_dispute_notification_never_break_processing(
    client, merchant, pay, stripe_only, enqueued
):
    intent = paid(pay, stripe_only)
    odd = {
        "id": "du_odd",
        "object": "dispute",
        "amount": "lots",
        "currency": "EURO!",
        "payment_intent": intent.psp_reference,
        "reason": {"not": "a string"},
        "status": "on_fire",
        "evidence_details": "soon",
        "payment_method_details": {"card": {"network_reason_code": "9" * 50}},
    }
    too_long = {**odd, "id": "du_" + "x" * 200, "amount": 100}
    for obj in (odd, too_long):
        body, headers = stripe_request(stripe_event("charge.dispute.created", obj))
        response = client.post(
            f"/webhooks/psp/{stripe_only.public_id}",
            body,
            content_type="application/json",
            **headers,
        )
        assert response.status_code == 200
        row = InboundWebhook.objects.order_by("-id")[0]
        inbound.inbound_webhook_process(webhook_id=row.pk)
        row.refresh_from_db()
        assert row.status == "processed", row.last_error
    dispute = Dispute.objects.get(psp_dispute_id="du_odd")
    assert (dispute.amount, dispute.currency) == (2000, "eur")
    assert (dispute.stage, dispute.status) == ("chargeback", "needs_response")
    assert dispute.evidence_due_by is None
    assert dispute_selectors.parked_notifications().count() == 1  # the unreadable id
