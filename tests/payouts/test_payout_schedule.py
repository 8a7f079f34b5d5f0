"""Automatic payouts: each seller's whole available balance, daily by default, weekly on its
anchor day, never for manual sellers; at most once per seller and day however often beat runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError

from apps.core.audit import Actor
from apps.payouts import services, tasks
from apps.payouts.models import Payout
from tests.payouts.conftest import available, fund, make_seller

pytestmark = pytest.mark.django_db

WEDNESDAY = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)


def _seller(merchant, name, interval=None, anchor=None):
    schedule = None
    if interval:
        schedule = {"interval": interval, **({"weekly_anchor": anchor} if anchor else {})}
    return make_seller(merchant, name=name, payout_schedule=schedule)


def test_scheduled_run_pays_out_due_sellers_once_per_day(merchant, other_merchant):
    # given sellers on every schedule, all with money, and one without
    daily = _seller(merchant, "daily")
    weekly_today = _seller(merchant, "weekly-wed", "weekly", "wednesday")
    weekly_other = _seller(merchant, "weekly-fri", "weekly", "friday")
    manual = _seller(merchant, "manual", "manual")
    broke = _seller(merchant, "broke")
    elsewhere = _seller(other_merchant, "other merchant's daily")
    for seller, amount in [
        (daily, 1_000),
        (weekly_today, 2_000),
        (weekly_other, 3_000),
        (manual, 4_000),
    ]:
        fund(merchant, amount, seller=seller)
    fund(other_merchant, 500, seller=elsewhere)
    fund(merchant, 9_000)  # the merchant's own balance is not on a schedule

    # when the schedule runs on a Wednesday
    created = services.payouts_run_scheduled(now=WEDNESDAY)

    # then the daily and the Wednesday sellers are paid their whole balance, nobody else
    assert created == 3
    payouts = {p.seller_id: p for p in Payout.objects.all()}
    assert set(payouts) == {daily.pk, weekly_today.pk, elsewhere.pk}
    assert payouts[daily.pk].amount == 1_000
    assert payouts[weekly_today.pk].amount == 2_000
    assert all(p.automatic and p.schedule_period == "2026-11-25" for p in payouts.values())
    assert available(merchant, seller=daily) == 0
    assert available(merchant, seller=weekly_other) == 3_000
    assert available(merchant, seller=manual) == 4_000
    assert available(merchant, seller=broke) == 0
    assert available(merchant) == 9_000

    # and running again the same day creates nothing, even with new money
    fund(merchant, 700, seller=daily)
    assert services.payouts_run_scheduled(now=WEDNESDAY + timedelta(hours=5)) == 0
    # the next day the daily seller gets the new money
    assert services.payouts_run_scheduled(now=WEDNESDAY + timedelta(days=1)) == 1
    assert Payout.objects.filter(seller=daily).order_by("id").last().amount == 700


def test_database_refuses_a_second_automatic_payout_for_the_period(merchant):
    seller = _seller(merchant, "daily")
    fund(merchant, 1_000, seller=seller)
    first = dict(
        merchant=merchant,
        livemode=False,
        amount=400,
        currency="eur",
        seller=seller.public_id,
        actor=Actor.system("tests"),
        automatic=True,
        schedule_period="2026-11-25",
    )
    services.payout_create(**first)
    with pytest.raises(IntegrityError):
        services.payout_create(**first)
    assert available(merchant, seller=seller) == 600  # the second booking rolled back


def test_beat_task_runs_the_schedule(merchant, settings):
    seller = _seller(merchant, "daily")
    fund(merchant, 1_000, seller=seller)
    assert tasks.run_scheduled.apply().get() == 1
    assert tasks.run_scheduled.apply().get() == 0
