"""Outbox -> events: nothing from a rolled-back transaction, exactly one event per committed
row however often the relay runs or wherever it dies."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from apps.events import relay, tasks
from apps.events.models import Event, OutboxEvent, WebhookDelivery
from apps.events.services import outbox_record


def record(merchant, object_id="pi_test", event_type="payment_intent.succeeded", **payload):
    return outbox_record(
        merchant_id=merchant.id,
        livemode=False,
        object_type="payment_intent",
        object_id=object_id,
        event_type=event_type,
        payload={"id": object_id, "status": "succeeded", **payload},
        previous_attributes={"status": "processing"},
    )


@pytest.fixture
def relay_enqueues(monkeypatch):
    calls = []
    monkeypatch.setattr(tasks.relay_outbox, "apply_async", lambda *a, **k: calls.append(k))
    return calls


def test_a_rolled_back_transaction_leaves_no_event(
    merchant, relay_enqueues, django_capture_on_commit_callbacks
):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        record(merchant)
        raise RuntimeError("the state change failed")
    assert callbacks == []
    assert relay_enqueues == []
    assert OutboxEvent.objects.count() == 0
    assert relay.outbox_relay() == 0
    assert Event.objects.count() == 0


def test_a_committed_transaction_enqueues_the_relay_once_and_gets_one_event_per_row(
    merchant, relay_enqueues, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        for status in ("processing", "requires_capture", "succeeded"):
            record(merchant, event_type=f"payment_intent.{status}")
    assert len(relay_enqueues) == 1  # one task per transaction, not per row
    assert relay.outbox_relay() == 3
    events = list(Event.objects.order_by("sequence"))
    assert [e.sequence for e in events] == [1, 2, 3]
    assert [e.type for e in events] == [
        "payment_intent.processing",
        "payment_intent.requires_capture",
        "payment_intent.succeeded",
    ]
    assert all(e.public_id.startswith("evt_") for e in events)
    assert not OutboxEvent.objects.filter(relayed_at__isnull=True).exists()


def test_running_the_relay_twice_makes_no_second_event(merchant, endpoint):
    record(merchant, object_id="pi_a")
    record(merchant, object_id="pi_b")
    assert relay.outbox_relay() == 2
    assert relay.outbox_relay() == 0
    assert Event.objects.count() == 2
    assert WebhookDelivery.objects.count() == 2


def test_a_relay_that_dies_before_marking_leaves_nothing_and_the_rerun_makes_one_event(
    merchant, endpoint, monkeypatch
):
    row = record(merchant)

    def crash(*args, **kwargs):
        raise SystemExit("worker killed between writing the event and marking the row")

    monkeypatch.setattr(WebhookDelivery.objects, "bulk_create", crash)
    with pytest.raises(SystemExit):
        relay.outbox_relay()
    monkeypatch.undo()
    assert Event.objects.count() == 0  # the event insert was rolled back with the rest
    row.refresh_from_db()
    assert row.relayed_at is None

    assert relay.outbox_relay() == 1
    assert Event.objects.get().outbox_id == row.pk
    assert WebhookDelivery.objects.count() == 1


def test_an_event_written_but_never_marked_is_not_duplicated(merchant, endpoint):
    """The state a relay leaves when it dies after its event is durable but before the row
    is marked: the unique outbox_id makes the next relay reuse the event."""
    row = record(merchant)
    existing = Event.objects.create(
        outbox_id=row.pk,
        merchant_id=merchant.id,
        livemode=False,
        type=row.event_type,
        object_type=row.object_type,
        object_id=row.object_id,
        sequence=row.sequence,
        data=row.payload,
        created_at=row.created_at,
    )
    relay.outbox_relay()
    assert list(Event.objects.all()) == [existing]
    assert WebhookDelivery.objects.get().event == existing
    row.refresh_from_db()
    assert row.relayed_at is not None


@pytest.mark.django_db(transaction=True)
def test_concurrent_relays_make_exactly_one_event_per_row(merchant):
    for index in range(120):
        record(merchant, object_id=f"pi_{index}")
    errors = []
    barrier = threading.Barrier(4)

    def run():
        try:
            barrier.wait()
            while relay.outbox_relay_batch(limit=10).events:
                pass
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Event.objects.count() == 120
    assert Event.objects.values("outbox_id").distinct().count() == 120


def test_broker_down_at_commit_the_sweep_relays_later(
    merchant, monkeypatch, django_capture_on_commit_callbacks
):
    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("redis is down")

    monkeypatch.setattr(tasks.relay_outbox, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        record(merchant)  # the state change commits regardless
    assert OutboxEvent.objects.filter(relayed_at__isnull=True).count() == 1
    assert tasks.relay_outbox() == 1  # what beat runs
    assert Event.objects.count() == 1


@pytest.mark.django_db(transaction=True)  # real commits, so on_commit hooks run per commit
def test_while_a_relay_is_queued_later_commits_publish_nothing_and_lose_nothing(
    merchant, relay_enqueues
):
    for n in range(5):
        with transaction.atomic():
            record(merchant, object_id=f"pi_{n}")
    # the first commit queued a relay (a short countdown, to gather rows); the next four rode on it
    assert len(relay_enqueues) == 1
    assert relay_enqueues[0]["countdown"] > 0
    assert tasks.relay_outbox() == 5  # the queued task relays every row committed before it
    with transaction.atomic():
        record(merchant, object_id="pi_after")
    # the task cleared the flag as it started: a commit after that queues a new relay
    assert len(relay_enqueues) == 2
    assert tasks.relay_outbox() == 1
    assert Event.objects.count() == 6


@pytest.mark.django_db(transaction=True)
def test_a_failed_publish_does_not_leave_the_relay_flag_behind(merchant, monkeypatch):
    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("redis is down")

    monkeypatch.setattr(tasks.relay_outbox, "apply_async", broker_down)
    with transaction.atomic():
        record(merchant, object_id="pi_down")
    calls = []
    monkeypatch.setattr(tasks.relay_outbox, "apply_async", lambda *a, **k: calls.append(k))
    with transaction.atomic():
        record(merchant, object_id="pi_up")
    assert len(calls) == 1  # the broker is back: this commit publishes at once
    assert tasks.relay_outbox() == 2
