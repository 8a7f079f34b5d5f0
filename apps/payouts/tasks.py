"""Thin Celery tasks: each calls one payouts service."""

from __future__ import annotations

from celery import shared_task

from apps.payouts import services


@shared_task(name="payouts.submit")
def submit_payout(payout_id: int) -> str:
    return services.payout_submit(payout_id=payout_id).status


@shared_task(name="payouts.run_scheduled")
def run_scheduled() -> int:
    return services.payouts_run_scheduled()


@shared_task(name="payouts.poll_in_transit")
def poll_in_transit() -> int:
    return services.payouts_poll_in_transit()


@shared_task(name="payouts.resubmit_pending")
def resubmit_pending() -> int:
    return services.payouts_resubmit_pending()
