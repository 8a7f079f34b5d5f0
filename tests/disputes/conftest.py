"""Disputes through the real simulator: it opens disputes and plays the PSP's side; its
notifications are caught by a local receiver and handed to our inbound webhook endpoint in the
order (or the disorder) a test chooses, then processed as the worker would."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from apps.disputes import selectors as dispute_selectors
from apps.events import inbound
from apps.events.models import InboundWebhook
from apps.intents.models import PaymentIntent
from apps.ledger import selectors as ledger_selectors
from apps.ledger.services import ledger_check_drift
from apps.psp_simulator.control_client import SimulatorControl
from tests.factories import ADYEN_CREDENTIALS, STRIPE_CREDENTIALS
from tests.intents.conftest import (  # noqa: F401  (fixtures)
    adyen_connector,
    connector_names,
    connectors,
    pay,
    platform_simulator,
    simulator_url,
    stripe_connector,
    tokenize,
)
from tests.support.webhook_receiver import WebhookReceiver

WINNING = "winning_evidence"


ADYEN_DISPUTE_CODES = {
    "REQUEST_FOR_INFORMATION",
    "NOTIFICATION_OF_CHARGEBACK",
    "CHARGEBACK",
    "CHARGEBACK_REVERSED",
    "SECOND_CHARGEBACK",
    "PREARBITRATION_WON",
    "PREARBITRATION_LOST",
    "DISPUTE_DEFENSE_PERIOD_ENDED",
    "NOTIFICATION_OF_FRAUD",
}


def _is_dispute(body: dict) -> bool:
    if "type" in body:
        return body["type"].startswith("charge.dispute.")
    item = body["notificationItems"][0]["NotificationRequestItem"]
    return item["eventCode"] in ADYEN_DISPUTE_CODES


class PspSide:
    """The simulator's notifications for one connector, delivered to us on demand."""

    def __init__(self, client, control: SimulatorControl, receiver: WebhookReceiver, connector):
        self.client = client
        self.control = control
        self.receiver = receiver
        self.connector = connector
        self.name = connector.simulator_account
        self.seen = 0
        host, port = receiver._server.server_address[:2]
        self.path = f"/{self.name}"
        secret = (
            ADYEN_CREDENTIALS["hmac_key"]
            if connector.connector_type == "adyen"
            else STRIPE_CREDENTIALS["webhook_secret"]
        )
        control.register_webhook(self.name, f"http://{host}:{port}{self.path}", secret=secret)

    def mine(self) -> list:
        """This connector's dispute notifications (the payment's own are not our business)."""
        return [w for w in self.receiver.received if w.path == self.path and _is_dispute(w.json())]

    def collect(self, count: int, timeout: float = 10.0) -> list:
        """The next `count` notifications the simulator sent for this connector."""
        deadline = time.monotonic() + timeout
        while len(self.mine()) < self.seen + count:
            if time.monotonic() > deadline:
                got = [w.json() for w in self.mine()[self.seen :]]
                raise AssertionError(f"expected {count} notifications, got {got}")
            time.sleep(0.02)
        batch = self.mine()[self.seen : self.seen + count]
        self.seen += count
        return batch

    def post(self, received, *, status: int = 200):
        headers = {}
        if "stripe-signature" in received.headers:
            headers["HTTP_STRIPE_SIGNATURE"] = received.headers["stripe-signature"]
        response = self.client.post(
            f"/webhooks/psp/{self.connector.public_id}",
            received.body,
            content_type="application/json",
            **headers,
        )
        assert response.status_code == status, response.content
        return InboundWebhook.objects.order_by("-id").first()

    def deliver(self, count: int, *, order=None) -> list[InboundWebhook]:
        """Receives `count` notifications (in `order`, indexes into them) and processes them."""
        batch = self.collect(count)
        if order is not None:
            batch = [batch[i] for i in order]
        rows = []
        for received in batch:
            row = self.post(received)
            inbound.inbound_webhook_process(webhook_id=row.pk)
            row.refresh_from_db()
            assert row.status in ("processed", "duplicate"), (row.status, row.last_error)
            rows.append(row)
        return rows

    def open(self, intent: PaymentIntent, **options) -> dict:
        return self.control.open_dispute(self.name, intent.psp_reference, **options)


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    """Evidence files go to a temporary directory, not the checkout."""
    settings.MEDIA_ROOT = str(tmp_path)


@pytest.fixture
def receiver():
    server = WebhookReceiver()
    yield server
    server.stop()


@pytest.fixture
def control(simulator_url):  # noqa: F811
    return SimulatorControl(simulator_url)


@pytest.fixture
def stripe_side(client, control, receiver, stripe_connector, enqueued):  # noqa: F811
    return PspSide(client, control, receiver, stripe_connector)


@pytest.fixture
def adyen_side(client, control, receiver, adyen_connector, enqueued):  # noqa: F811
    return PspSide(client, control, receiver, adyen_connector)


@pytest.fixture
def enqueued(monkeypatch):
    from apps.events import tasks

    calls = []
    monkeypatch.setattr(
        tasks.process_psp_webhook, "apply_async", lambda args, **kwargs: calls.append(args[0])
    )
    return calls


@pytest.fixture
def stripe_only(stripe_connector, adyen_connector):  # noqa: F811
    adyen_connector.priority = 9
    adyen_connector.save(update_fields=["priority"])
    return stripe_connector


@pytest.fixture
def adyen_only(stripe_connector, adyen_connector):  # noqa: F811
    stripe_connector.priority = 9
    stripe_connector.save(update_fields=["priority"])
    adyen_connector.priority = 1
    adyen_connector.save(update_fields=["priority"])
    return adyen_connector


def assert_books_hold(merchant) -> None:
    """The ledger balances, every account equals its entries, the merchant's balance is the
    sum of its journals, and refunded + disputed <= received holds in the database."""
    for trial in ledger_selectors.trial_balance():
        assert trial.total_debit == trial.total_credit, trial
    assert dispute_selectors.audit_dispute_totals_mismatched() == []
    run = ledger_check_drift()
    assert run.findings_count == 0, ledger_selectors.drift_findings(run_id=run.pk)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM intents_paymentintent "
            "WHERE amount_refunded + amount_disputed > amount_received OR amount_disputed < 0"
        )
        assert cursor.fetchone()[0] == 0
        cursor.execute(
            """SELECT a.code, a.posted_balance, COALESCE(SUM(
                   CASE WHEN a.normal_balance = 'debit' THEN e.amount ELSE -e.amount END), 0)
               FROM ledger_account a
               LEFT JOIN ledger_entry e ON e.account_id = a.id AND e.phase = 'posted'
               WHERE a.merchant_id = %s GROUP BY a.id""",
            [merchant.pk],
        )
        for code, balance, from_entries in cursor.fetchall():
            assert balance == from_entries, code
