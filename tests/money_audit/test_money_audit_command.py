"""`manage.py money_audit`: a clean platform passes; each invariant, broken on purpose in the
database or behind the platform's back at the (simulated) PSP, is reported broken with the
offending ids, and the command exits 1."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.events import relay
from apps.events.models import InboundWebhook, OutboxEvent, WebhookDelivery
from apps.intents.models import PaymentAttempt, PaymentIntent, Refund
from apps.ledger.models import JournalTransaction, LedgerEntry
from apps.money_audit.checks import INVARIANTS, PSP_CHECKS
from tests.factories import WebhookEndpointFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("connectors")]

ALL_CHECKS = set(INVARIANTS)
ZERO_GRACE = ("--processing-grace", "0", "--unresolved-after", "0", "--overdue-after", "0")


def _intent(body: dict) -> PaymentIntent:
    return PaymentIntent.objects.get(public_id=body["id"])


def _approved_attempt(intent: PaymentIntent) -> PaymentAttempt:
    return intent.attempts.get(outcome="approved")


def _bypassing_triggers(sql: str, params) -> None:
    """As a superuser with the ledger's append-only triggers off: the only way to corrupt it."""
    with connection.cursor() as cursor:
        # the journal checks queued by the payment's inserts run now, while they still hold
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(sql, params)
        finally:
            cursor.execute("SET session_replication_role = DEFAULT")


def test_a_clean_platform_passes_with_every_invariant_held(api, pay, sim, connector_names, audit):
    # given payments of every kind, through both PSP dialects
    paid = pay(amount=2000).json()
    assert paid["status"] == "succeeded"
    manual = pay(amount=3000, capture_method="manual").json()
    captured = api.post(
        f"/v1/payment_intents/{manual['id']}/capture", {"amount_to_capture": 1500}, format="json"
    )
    assert captured.json()["status"] == "succeeded", captured.content
    refund = api.post("/v1/refunds", {"payment_intent": paid["id"], "amount": 500}, format="json")
    assert refund.json()["status"] == "succeeded", refund.content
    to_cancel = pay(amount=1000, capture_method="manual").json()
    assert api.post(f"/v1/payment_intents/{to_cancel['id']}/cancel").status_code == 200
    assert pay(number="4000000000009995").status_code == 402  # declined at both PSPs
    sim.faults(connector_names["stripe"], outage=True)  # fails over to Adyen
    on_adyen = pay(amount=2500).json()
    sim.faults(connector_names["stripe"])
    assert on_adyen["status"] == "succeeded"
    assert _intent(on_adyen).connector.connector_type == "adyen"
    adyen_refund = api.post("/v1/refunds", {"payment_intent": on_adyen["id"]}, format="json")
    assert adyen_refund.status_code == 200, adyen_refund.content

    # when the audit runs
    result = audit()

    # then every invariant held, the PSP side included, and the command exits 0
    assert result.exit_status == 0, result.text
    assert result.broken() == set()
    assert {c.name: c.status for c in result.run.checks.all()} == dict.fromkeys(ALL_CHECKS, "held")
    assert result.run.status == "passed"
    assert result.run.figures["psp"]["intents_compared"] == 5
    assert result.run.figures["intents"] == {
        "canceled": 1,
        "requires_payment_method": 1,
        "succeeded": 3,
    }
    assert "every invariant held (18 held, 0 skipped)" in result.text
    assert "PSP record" in result.text and "5 intents compared" in result.text


def test_without_a_simulator_the_psp_checks_are_skipped_and_the_rest_still_run(pay, audit):
    pay()
    result = audit(simulator="http://127.0.0.1:9")
    assert result.exit_status == 0, result.text
    statuses = {c.name: c.status for c in result.run.checks.all()}
    assert {name for name, status in statuses.items() if status == "skipped"} == set(PSP_CHECKS)
    assert {name for name, status in statuses.items() if status == "held"} == ALL_CHECKS - set(
        PSP_CHECKS
    )
    assert "no PSP simulator: nothing answers at http://127.0.0.1:9" in result.text
    assert result.run.psp_record_url == ""


def test_an_unbalanced_journal_and_a_drifted_balance_are_named(pay, audit):
    intent = _intent(pay(amount=2000).json())
    journal = JournalTransaction.objects.filter(source_id=intent.public_id).first()
    entry = LedgerEntry.objects.filter(transaction=journal).order_by("id").first()
    _bypassing_triggers("UPDATE ledger_entry SET amount = amount + 7 WHERE id = %s", [entry.pk])

    result = audit()

    assert result.exit_status == 1
    assert result.status("ledger_journals_balanced") == "broken"
    assert journal.public_id in result.offender_ids("ledger_journals_balanced")
    assert result.status("ledger_balances_match_entries") == "broken"
    assert any(
        offender.startswith(f"account {entry.account_id} (")
        for offender in result.offender_ids("ledger_balances_match_entries")
    )
    assert "BROKEN  ledger_journals_balanced" in result.text
    assert journal.public_id in result.text


def test_an_intent_left_processing_with_an_unknown_attempt_is_named(
    pay, sim, connector_names, audit
):
    # the PSP charged, but its answer was lost: processing, attempt unknown, a live charge
    sim.faults(connector_names["stripe"], response_lost_rate=1.0, response_lost_delay_s=3)
    body = pay(amount=4200).json()
    sim.faults(connector_names["stripe"])
    assert body["status"] == "processing"
    attempt = PaymentAttempt.objects.get(intent__public_id=body["id"])
    assert attempt.outcome == "unknown"

    # within the grace periods nothing is broken yet about it…
    within = audit()
    assert "intents_not_processing" not in within.broken()
    assert "attempts_resolved" not in within.broken()

    # …past them, the intent and its attempt are named
    result = audit(*ZERO_GRACE)
    assert result.exit_status == 1
    assert result.offender_ids("intents_not_processing") == {body["id"]}
    assert "processing (authorize)" in result.check("intents_not_processing").offenders[0]["detail"]
    assert result.offender_ids("attempts_resolved") == {attempt.public_id}
    # and the PSP holds a charge for an intent that is not succeeded
    assert result.offender_ids("psp_no_unbacked_charge") == {body["id"]}

    # flagged for ops review, the attempt no longer counts as forgotten; the intent still does
    PaymentIntent.objects.filter(public_id=body["id"]).update(needs_review=True)
    flagged = audit(*ZERO_GRACE)
    assert "attempts_resolved" not in flagged.broken()
    assert flagged.offender_ids("intents_not_processing") == {body["id"]}


def test_a_psp_charge_without_a_succeeded_intent_is_named(pay, psp, connector_names, audit):
    # a charged payment that our side calls failed (the lost-response misclassification)
    body = pay(amount=2100).json()
    PaymentIntent.objects.filter(public_id=body["id"]).update(status="requires_payment_method")
    # and a charge at the PSP that names none of our attempts
    stray = psp.charge(connector_names["stripe"], attempt_id="pa_not_ours", amount=999)

    result = audit()

    assert result.exit_status == 1
    assert result.offender_ids("psp_no_unbacked_charge") == {body["id"], stray["latest_charge"]}


def test_a_succeeded_or_authorized_intent_without_its_psp_charge_is_named(
    api, pay, psp, connector_names, audit
):
    # declined everywhere (no live charge), but our side says succeeded
    declined = pay(number="4000000000000002", amount=1300)
    assert declined.status_code == 402
    declined_id = declined.json()["error"]["payment_intent"]["id"]
    PaymentIntent.objects.filter(public_id=declined_id).update(
        status="succeeded", amount_received=1300
    )
    # authorized here, canceled at the PSP behind our back
    manual = _intent(pay(amount=1400, capture_method="manual").json())
    psp.stripe(connector_names["stripe"], f"payment_intents/{manual.psp_reference}/cancel")

    result = audit()

    assert result.exit_status == 1
    assert result.offender_ids("psp_no_uncharged_intent") == {declined_id, manual.public_id}


def test_a_double_charge_and_a_double_capture_are_named(pay, psp, connector_names, audit):
    intent = _intent(pay(amount=2200).json())
    attempt = _approved_attempt(intent)
    # a second charge at the PSP for the same attempt (as a re-send without the key would make)
    psp.charge(connector_names["stripe"], attempt_id=attempt.public_id, amount=2200)

    result = audit()

    assert result.exit_status == 1
    assert result.offender_ids("psp_no_double_charge") == {intent.public_id}
    details = " ".join(o["detail"] for o in result.check("psp_no_double_charge").offenders)
    assert f"attempt {attempt.public_id} has 2 PSP charges" in details
    assert result.offender_ids("psp_no_double_capture") == {intent.public_id}
    assert result.offender_ids("psp_amounts_match") == {intent.public_id}  # 2200 vs 4400


def test_a_captured_amount_that_differs_from_the_psps_is_named(api, pay, audit):
    body = pay(amount=3000, capture_method="manual").json()
    api.post(
        f"/v1/payment_intents/{body['id']}/capture", {"amount_to_capture": 1500}, format="json"
    )
    PaymentIntent.objects.filter(public_id=body["id"]).update(amount_received=1400)

    result = audit()

    assert result.exit_status == 1
    assert result.offender_ids("psp_amounts_match") == {body["id"]}
    assert "received 1400, PSP captured 1500" in result.text


def test_refunds_that_disagree_with_the_psp_are_named(
    api, pay, psp, connector_names, audit, settings
):
    # a refund made at the PSP that we never asked for
    paid = _intent(pay(amount=2000).json())
    psp.stripe(
        connector_names["stripe"],
        "refunds",
        payment_intent=paid.psp_reference,
        amount=300,
        **{"metadata[refund_id]": "re_behind_our_back"},
    )
    # a refund the PSP failed (the refund-fails card) that our side calls succeeded
    failing = pay(number="4000000000005126", amount=1800).json()
    refund = api.post(
        "/v1/refunds", {"payment_intent": failing["id"], "amount": 500}, format="json"
    ).json()
    assert refund["status"] == "pending"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the simulator fails it after ~1 s
        if [r["status"] for r in psp.refunds(reference=refund["id"])] == ["failed"]:
            break
        time.sleep(0.2)
    pending = audit(*ZERO_GRACE)
    assert refund["id"] in pending.offender_ids("refunds_resolved")
    Refund.objects.filter(public_id=refund["id"]).update(status="succeeded")

    result = audit()

    assert result.exit_status == 1
    assert result.offender_ids("psp_refunds_match") == {paid.public_id, refund["id"], failing["id"]}
    details = {o["id"]: o["detail"] for o in result.check("psp_refunds_match").offenders}
    assert details[refund["id"]].startswith("succeeded here, at the PSP: ")
    assert "failed" in details[refund["id"]]


def test_a_refund_reservation_that_does_not_add_up_is_named(pay, audit):
    body = pay(amount=2000).json()
    PaymentIntent.objects.filter(public_id=body["id"]).update(amount_refunded=100)

    result = audit()

    assert result.exit_status == 1
    assert result.offender_ids("refund_reservations") == {body["id"]}
    assert "amount_refunded 100, pending + succeeded refunds 0" in result.text


def test_unrelayed_outbox_rows_stuck_deliveries_and_unprocessed_psp_webhooks_are_named(
    merchant, pay, stripe_connector, audit
):
    WebhookEndpointFactory(merchant=merchant, url="http://127.0.0.1:9/merchant-hooks")
    pay(amount=1000)
    unrelayed = {f"outbox {pk}" for pk in OutboxEvent.objects.values_list("pk", flat=True)}
    assert unrelayed

    # outbox rows written but never relayed
    before_relay = audit(*ZERO_GRACE)
    assert before_relay.offender_ids("outbox_relayed") == unrelayed

    # relayed, but the deliveries never sent; one delivered, one dead-lettered are fine
    relay.outbox_relay()
    deliveries = list(WebhookDelivery.objects.order_by("id"))
    assert len(deliveries) >= 3
    WebhookDelivery.objects.filter(pk=deliveries[0].pk).update(status="succeeded")
    WebhookDelivery.objects.filter(pk=deliveries[1].pk).update(status="dead")
    stuck = {d.public_id for d in deliveries[2:]}
    # a PSP notification accepted but never processed
    inbound = InboundWebhook.objects.create(
        connector=stripe_connector,
        merchant_id=merchant.id,
        livemode=False,
        body=b"{}",
        body_sha256="0" * 64,
        psp_event_id="evt_never_processed",
        status=InboundWebhook.Status.PENDING,
        next_attempt_at=timezone.now() - timedelta(hours=1),
    )

    result = audit(*ZERO_GRACE)

    assert result.exit_status == 1
    assert "outbox_relayed" not in result.broken()
    assert result.offender_ids("webhooks_delivered") == stuck
    assert result.offender_ids("inbound_webhooks_processed") == {inbound.public_id}
    # with the default schedule slack, deliveries due a moment ago are not overdue yet
    assert "webhooks_delivered" not in audit().broken()


def test_card_numbers_in_a_text_column_or_a_log_file_are_named_masked(pay, audit, tmp_path):
    body = pay(amount=1000).json()
    intent = _intent(body)
    PaymentIntent.objects.filter(pk=intent.pk).update(
        description="customer typed 4242 4242 4242 4242 here"
    )
    log = tmp_path / "web.log"
    log.write_text(
        "INFO charge for 5555555555554444 approved\n"  # a card number: a hit
        "INFO digest 4242424242424242abcdef\n"  # glued to letters: part of a token, not a card
        "INFO order 4242424242424241\n"  # Luhn-invalid: not a card number
        "INFO took 1733232345123 ms\n"  # a millisecond timestamp: not a card prefix
    )

    result = audit("--log-file", str(log))

    assert result.exit_status == 1
    assert result.offender_ids("no_card_numbers") == {
        f"intents_paymentintent.description id={intent.pk}",
        f"{log}:1",
    }
    assert "424242…4242" in result.text and "555555…4444" in result.text
    # the report never repeats a full card number
    assert "4242424242424242" not in result.text.replace("4242424242424242abcdef", "")
    assert "5555555555554444" not in result.text


def test_json_output_lists_every_check(pay, audit_json):
    pay()
    status, report = audit_json()
    assert status == 0
    assert report["status"] == "passed"
    assert [c["name"] for c in report["checks"]] == list(INVARIANTS)
    assert report["figures"]["psp"]["charges_ours"] == 1
