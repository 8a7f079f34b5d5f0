"""The disputes back-office: the queue and the dispute page for the merchants a staff member
serves; evidence and acceptance behind their own permissions, through the services."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.disputes.models import Dispute, EvidenceFile
from tests.disputes.test_dispute_lifecycle import paid
from tests.factories import StaffUserFactory

CHANGELIST = "/admin/disputes/dispute/"
PDF = b"%PDF-1.4\n%%EOF\n"


@pytest.fixture
def dispute(pay, stripe_only, stripe_side):
    intent = paid(pay, stripe_only)
    stripe_side.open(intent)
    stripe_side.deliver(2)
    return Dispute.objects.get(intent=intent)


def test_finance_sees_the_queue_and_answers_through_the_services(
    client, staff_roles, merchant, dispute
):
    client.force_login(StaffUserFactory(role="finance", serves=[merchant]))
    queue = client.get(CHANGELIST)
    assert queue.status_code == 200 and dispute.public_id in queue.content.decode()
    page = client.get(f"{CHANGELIST}{dispute.pk}/change/")
    text = page.content.decode()
    assert "charge.dispute.created" in text and "chargeback" in text  # the timeline
    assert "dispute rate" in text
    assert client.get(f"{CHANGELIST}rates/").status_code == 200

    upload = client.post(
        f"{CHANGELIST}{dispute.pk}/evidence/",
        {
            "document": SimpleUploadedFile("receipt.pdf", PDF),
            "document_field": "receipt",
            "uncategorized_text": "winning_evidence",
            "stage": "Stage evidence",
        },
    )
    assert upload.status_code == 302, upload.content
    dispute = Dispute.objects.get(pk=dispute.pk)
    assert dispute.evidence["receipt"] == EvidenceFile.objects.get().public_id
    response = client.post(
        CHANGELIST, {"action": "submit_selected", "_selected_action": [dispute.pk]}, follow=True
    )
    assert response.status_code == 200
    assert Dispute.objects.get(pk=dispute.pk).status == "under_review"


def test_support_sees_disputes_but_cannot_answer_them(client, staff_roles, merchant, dispute):
    client.force_login(StaffUserFactory(role="support", serves=[merchant]))
    assert client.get(f"{CHANGELIST}{dispute.pk}/change/").status_code == 200
    intent_page = client.get(f"/admin/intents/paymentintent/{dispute.intent_id}/change/")
    assert dispute.public_id in intent_page.content.decode()
    assert client.get(f"{CHANGELIST}{dispute.pk}/evidence/").status_code == 403
    client.post(CHANGELIST, {"action": "accept_selected", "_selected_action": [dispute.pk]})
    assert Dispute.objects.get(pk=dispute.pk).status == "needs_response"


def test_staff_see_only_the_merchants_they_serve(client, staff_roles, other_merchant, dispute):
    client.force_login(StaffUserFactory(role="finance", serves=[other_merchant]))
    assert dispute.public_id not in client.get(CHANGELIST).content.decode()
    assert client.get(f"{CHANGELIST}{dispute.pk}/evidence/").status_code == 403
