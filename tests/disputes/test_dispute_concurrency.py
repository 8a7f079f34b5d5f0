"""Two workers applying notifications of one new dispute at the same moment: one dispute, the
money withdrawn once."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from apps.disputes.models import Dispute, DisputeNotification
from apps.events import inbound
from tests.disputes.conftest import assert_books_hold
from tests.disputes.test_dispute_lifecycle import FEE, merchant_pending, paid


@pytest.mark.django_db(transaction=True)
def test_concurrent_notifications_open_one_dispute_and_withdraw_once(
    merchant, pay, stripe_only, stripe_side
):
    intent = paid(pay, stripe_only)
    before = merchant_pending(merchant)
    stripe_side.open(intent)
    rows = [stripe_side.post(received) for received in stripe_side.collect(2)]
    barrier = threading.Barrier(len(rows))
    errors = []

    def work(row_id: int) -> None:
        try:
            barrier.wait(5)
            inbound.inbound_webhook_process(webhook_id=row_id)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(row.pk,)) for row in rows]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    for row in rows:  # a worker that lost a race retries, as the beat sweep would
        inbound.inbound_webhook_process(webhook_id=row.pk)
    dispute = Dispute.objects.get(intent=intent)
    assert DisputeNotification.objects.filter(dispute=dispute).count() == 2
    assert merchant_pending(merchant) == before - 2000 - FEE
    assert dispute.funds_withdrawn and dispute.withdrawals_seen == 1
    assert_books_hold(merchant)
