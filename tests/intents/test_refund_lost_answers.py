"""A refund whose PSP answer never arrives (lost response, a process killed mid-call, a lost
notification) is resolved by inquiry within a bounded time, never by a second refund at the PSP,
and never left pending with nothing scheduled. An inquiry answer that proves nothing (a 503, a
429) never fails a refund the PSP may have made. Driven through the real simulator's faults."""

import time
from datetime import timedelta

import pytest
import requests
from django.conf import settings
from django.utils import timezone

from apps.core.audit import Actor
from apps.events.models import OutboxEvent
from apps.intents import services
from apps.intents.models import PaymentIntent, Refund
from apps.intents.services import refunds as refund_services
from apps.ledger import selectors as ledger_selectors

REFUND_FAILS = "4000000000005126"  # approves; any refund of it fails later, asynchronously


@pytest.fixture
def connector_of(request):
    def make(dialect: str):
        return request.getfixturevalue(f"{dialect}_connector")

    return make


def _psp_refunds(simulator_url: str, name: str) -> list[dict]:
    response = requests.get(f"{simulator_url}/_sim/refunds", params={"connector": name}, timeout=5)
    response.raise_for_status()
    body = response.json()
    return body["data"] if isinstance(body, dict) else body


def _paid(pay, number="4242424242424242", amount=5000) -> str:
    body = pay(number=number, amount=amount).json()
    assert body["status"] == "succeeded", body
    return body["id"]


def _time_passes(refund: Refund, seconds: float) -> None:
    """Moves the refund's clock `seconds` back, as if that long had passed."""
    delta = timedelta(seconds=seconds)
    refund.refresh_from_db()
    Refund.objects.filter(pk=refund.pk).update(
        created_at=refund.created_at - delta,
        updated_at=refund.updated_at - delta,
        next_inquiry_at=refund.next_inquiry_at - delta if refund.next_inquiry_at else None,
    )


def _events(refund_id: str, event_type: str) -> int:
    return OutboxEvent.objects.filter(object_id=refund_id, event_type=event_type).count()


def _books_balance() -> None:
    for trial in ledger_selectors.trial_balance():
        assert trial.total_debit == trial.total_credit


def _lost_refund(api, sim, name, intent_id, amount=2000) -> Refund:
    """A refund the PSP processed whose answer never came back to us."""
    sim.faults(name, response_lost_rate=1.0, response_lost_delay_s=3, operations=["refund"])
    response = api.post(
        "/v1/refunds", {"payment_intent": intent_id, "amount": amount}, format="json"
    )
    sim.faults(name)
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "pending"
    return Refund.objects.get(public_id=response.json()["id"])


@pytest.mark.parametrize("dialect", ["stripe", "adyen"])
def test_a_lost_refund_answer_is_inquired_within_seconds_not_refunded_twice(
    api, pay, sim, simulator_url, connector_names, dialect, connector_of
):
    connector_of(dialect)
    name = connector_names[dialect]
    intent_id = _paid(pay)
    refund = _lost_refund(api, sim, name, intent_id)

    # scheduled at once: the first inquiry is due after the first back-off step
    first_step = settings.INQUIRY_BACKOFF_SECONDS[0]
    assert refund.next_inquiry_at is not None
    assert refund.next_inquiry_at <= timezone.now() + timedelta(seconds=first_step)
    assert services.intents_resolve_stalled_operations() == 0  # not due yet

    _time_passes(refund, first_step)
    assert services.intents_resolve_stalled_operations() == 1

    refund.refresh_from_db()
    psp = _psp_refunds(simulator_url, name)
    assert len(psp) == 1 and psp[0]["amount"] == 2000  # asked about, never sent twice
    if dialect == "stripe":
        # the lookup found it: succeeded, booked once, the merchant told once
        assert refund.status == "succeeded" and refund.next_inquiry_at is None
        assert refund.psp_reference == psp[0]["id"]
        assert _events(refund.public_id, "refund.succeeded") == 1
    else:
        # Adyen has no refund lookup: the re-send with the same key is answered "received"
        # from its idempotency store, and the REFUND notification settles it; meanwhile the
        # refund stays scheduled for the next inquiry
        assert refund.status == "pending"
        assert refund.next_inquiry_at is not None
        refund_services.refund_apply_result(
            refund_id=refund.pk, outcome=refund_services.Outcome.APPROVED
        )
        refund.refresh_from_db()
        assert refund.status == "succeeded" and refund.next_inquiry_at is None
    intent = PaymentIntent.objects.get(public_id=intent_id)
    assert intent.amount_refunded == 2000
    _books_balance()


@pytest.mark.parametrize("dialect", ["stripe", "adyen"])
@pytest.mark.parametrize(
    "answer",
    [
        {"error_503_rate": 1.0},
        {"rejected_rate": 1.0, "rejected_status": 429},
        {"outage": True, "outage_mode": "503"},
    ],
    ids=["503", "429", "outage"],
)
def test_an_inquiry_answer_that_proves_nothing_never_fails_a_refund_the_psp_made(
    api, pay, sim, simulator_url, connector_names, dialect, answer, connector_of
):
    """The PSP refunded (its answer was lost); the inquiry is then refused before processing.
    Calling the refund failed would release the reservation and let the merchant refund the
    money a second time."""
    connector_of(dialect)
    name = connector_names[dialect]
    intent_id = _paid(pay)
    refund = _lost_refund(api, sim, name, intent_id)

    sim.faults(name, **answer)
    _time_passes(refund, settings.INQUIRY_BACKOFF_SECONDS[0])
    services.intents_resolve_stalled_operations()
    sim.faults(name)

    refund.refresh_from_db()
    assert refund.status == "pending"
    assert _events(refund.public_id, "refund.failed") == 0
    assert PaymentIntent.objects.get(public_id=intent_id).amount_refunded == 2000  # still held
    # asked again on the schedule (the second step), not abandoned
    assert refund.next_inquiry_at is not None
    assert refund.next_inquiry_at <= timezone.now() + timedelta(
        seconds=settings.INQUIRY_BACKOFF_SECONDS[1]
    )
    assert len(_psp_refunds(simulator_url, name)) == 1


def test_a_refund_whose_process_died_before_the_psp_call_is_sent_once_by_the_sweep(
    api, pay, sim, simulator_url, connector_names, stripe_connector, monkeypatch
):
    name = connector_names["stripe"]
    intent_id = _paid(pay)

    def killed(**kwargs):
        raise SystemExit("web worker killed between tx A and the PSP call")

    monkeypatch.setattr(refund_services.gateway, "refund", killed)
    intent = PaymentIntent.objects.get(public_id=intent_id)
    with pytest.raises(SystemExit):
        services.refund_create(
            merchant=intent.merchant,
            livemode=False,
            payment_intent=intent_id,
            actor=Actor.system("tests"),
            amount=1500,
        )
    monkeypatch.undo()
    refund = Refund.objects.get(intent__public_id=intent_id)
    assert refund.status == "pending" and _psp_refunds(simulator_url, name) == []
    # due once its PSP call could no longer answer: the connector's timeouts plus the grace
    due = refund.next_inquiry_at - refund.created_at
    assert due <= timedelta(
        milliseconds=stripe_connector.connect_timeout_ms + stripe_connector.read_timeout_ms,
        seconds=settings.PENDING_OPERATION_GRACE_SECONDS + 1,
    )
    assert services.intents_resolve_stalled_operations() == 0  # its call may still answer

    _time_passes(refund, due.total_seconds())
    assert services.intents_resolve_stalled_operations() == 1

    refund.refresh_from_db()
    psp = _psp_refunds(simulator_url, name)
    assert refund.status == "succeeded" and [r["amount"] for r in psp] == [1500]
    assert refund.psp_reference == psp[0]["id"]
    _books_balance()


@pytest.mark.parametrize("dialect", ["stripe", "adyen"])
def test_a_refund_whose_process_died_after_the_psp_refunded_is_not_refunded_again(
    api, pay, sim, simulator_url, connector_names, dialect, connector_of, monkeypatch
):
    connector_of(dialect)
    name = connector_names[dialect]
    intent_id = _paid(pay)
    real_apply = refund_services.refund_apply_result

    def killed(**kwargs):
        raise SystemExit("web worker killed between the PSP's answer and tx B")

    monkeypatch.setattr(refund_services, "refund_apply_result", killed)
    intent = PaymentIntent.objects.get(public_id=intent_id)
    with pytest.raises(SystemExit):
        services.refund_create(
            merchant=intent.merchant,
            livemode=False,
            payment_intent=intent_id,
            actor=Actor.system("tests"),
        )
    monkeypatch.setattr(refund_services, "refund_apply_result", real_apply)
    refund = Refund.objects.get(intent__public_id=intent_id)
    assert refund.status == "pending" and len(_psp_refunds(simulator_url, name)) == 1

    _time_passes(refund, (refund.next_inquiry_at - refund.created_at).total_seconds())
    services.intents_resolve_stalled_operations()

    refund.refresh_from_db()
    assert [r["amount"] for r in _psp_refunds(simulator_url, name)] == [5000]  # once
    if dialect == "stripe":
        assert refund.status == "succeeded"
    else:  # "received" again; the REFUND notification settles it, the inquiry goes on
        assert refund.status == "pending" and refund.next_inquiry_at is not None


def test_a_refund_failed_by_the_psp_is_found_failed_when_its_notification_is_lost(
    api, pay, sim, simulator_url, connector_names, stripe_connector
):
    """Stripe answers the refund-fails card's refund `pending` and fails it a moment later by
    notification. Without the notification, a re-send with the same key only replays the stored
    `pending` answer for ever; the lookup sees the refund failed."""
    name = connector_names["stripe"]
    intent_id = _paid(pay, number=REFUND_FAILS)
    response = api.post("/v1/refunds", {"payment_intent": intent_id}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "pending"
    refund = Refund.objects.get(public_id=response.json()["id"])
    # the PSP acknowledged it and notifies the outcome; should that be lost, it is asked anyway
    second_step = settings.INQUIRY_BACKOFF_SECONDS[1]
    assert refund.next_inquiry_at <= timezone.now() + timedelta(seconds=second_step)

    deadline = timezone.now() + timedelta(seconds=10)
    while timezone.now() < deadline:  # the PSP fails it about a second later
        if [r["status"] for r in _psp_refunds(simulator_url, name)] == ["failed"]:
            break
        time.sleep(0.2)
    assert services.intents_resolve_stalled_operations() == 0  # not due yet
    _time_passes(refund, second_step)
    assert services.intents_resolve_stalled_operations() == 1

    refund.refresh_from_db()
    assert refund.status == "failed" and refund.next_inquiry_at is None
    assert _events(refund.public_id, "refund.failed") == 1
    assert PaymentIntent.objects.get(public_id=intent_id).amount_refunded == 0  # released
    assert len(_psp_refunds(simulator_url, name)) == 1


def test_a_refund_the_psp_never_got_fails_only_once_its_key_has_expired(
    api, pay, sim, simulator_url, connector_names, stripe_connector
):
    """Within Stripe's key window the inquiry re-sends with the refund's key (processed now,
    once); past it, the lookup's "no such refund" is final and the reservation is released."""
    name = connector_names["stripe"]
    intent_id = _paid(pay)
    sim.faults(name, error_500_rate=1.0, operations=["refund"])  # not processed, in doubt
    response = api.post("/v1/refunds", {"payment_intent": intent_id}, format="json")
    sim.faults(name)
    refund = Refund.objects.get(public_id=response.json()["id"])
    assert refund.status == "pending" and _psp_refunds(simulator_url, name) == []

    _time_passes(refund, 21 * 3600)  # past the 20 h re-send window
    services.intents_resolve_stalled_operations()

    refund.refresh_from_db()
    assert refund.status == "failed" and _psp_refunds(simulator_url, name) == []
    assert PaymentIntent.objects.get(public_id=intent_id).amount_refunded == 0


def test_a_refund_still_unknown_after_the_schedule_is_flagged_and_still_asked(
    api, pay, sim, connector_names, adyen_connector
):
    name = connector_names["adyen"]
    intent_id = _paid(pay)
    refund = _lost_refund(api, sim, name, intent_id)
    sim.faults(name, error_500_rate=1.0)  # every inquiry stays in doubt
    for _ in settings.INQUIRY_BACKOFF_SECONDS:
        refund.refresh_from_db()
        _time_passes(refund, (refund.next_inquiry_at - timezone.now()).total_seconds() + 1)
        assert services.intents_resolve_stalled_operations() == 1
    sim.faults(name)

    refund.refresh_from_db()
    assert refund.status == "pending"
    assert PaymentIntent.objects.get(public_id=intent_id).needs_review  # listed for ops
    # never abandoned: the next inquiry is due within the schedule's last step
    assert refund.next_inquiry_at <= timezone.now() + timedelta(
        seconds=settings.INQUIRY_BACKOFF_SECONDS[-1]
    )
