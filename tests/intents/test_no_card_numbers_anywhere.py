"""After a run through every checkout path, no full card number is in any log line, audit row,
outbox row or text column of the database."""

import logging

import pytest

from apps.core.models import AuditLogEntry
from apps.events.models import OutboxEvent
from tests.support.pan_scan import find_pans_in_database, find_pans_in_text

pytestmark = pytest.mark.usefixtures("connectors")

CARDS = {
    "4242424242424242",
    "4000000000009987",
    "4000000000000002",
    "5555555555554444",
    "4000002500003155",
}


def test_no_full_card_number_is_stored_or_logged(api, pay, sim, connector_names, caplog):
    with caplog.at_level(logging.DEBUG):
        paid = pay(number="4242424242424242", capture_method="manual").json()["id"]
        api.post(f"/v1/payment_intents/{paid}/capture", {"amount_to_capture": 1000}, format="json")
        api.post("/v1/refunds", {"payment_intent": paid, "amount": 500}, format="json")
        pay(number="4000000000009987")  # hard decline
        pay(number="4000000000000002")  # soft decline, fails over
        pay(number="4000002500003155")  # 3DS
        sim.faults(connector_names["stripe"], response_lost_rate=1.0, response_lost_delay_s=3)
        pay(number="5555555555554444", key="lost-1")  # unknown outcome
    assert find_pans_in_text(caplog.text, CARDS) == []
    audit_text = " ".join(str(row.changes) for row in AuditLogEntry.objects.all())
    outbox_text = " ".join(str(row.payload) for row in OutboxEvent.objects.all())
    assert find_pans_in_text(audit_text, CARDS) == []
    assert find_pans_in_text(outbox_text, CARDS) == []
    assert find_pans_in_database(CARDS) == []
