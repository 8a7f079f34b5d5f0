from celery import shared_task

from apps.intents import services


@shared_task(name="intents.inquire_attempt")
def inquire_attempt(attempt_id: int) -> None:
    services.attempt_inquire(attempt_id=attempt_id)


@shared_task(name="intents.inquire_due_attempts")
def inquire_due_attempts() -> int:
    return services.attempts_inquire_due()


@shared_task(name="intents.resolve_stalled_operations")
def resolve_stalled_operations() -> int:
    return services.intents_resolve_stalled_operations()


@shared_task(name="intents.expire_authorizations")
def expire_authorizations() -> int:
    return services.intents_expire_authorizations()


@shared_task(name="intents.inquire_refund")
def inquire_refund(refund_id: int) -> None:
    services.refund_inquire(refund_id=refund_id)


@shared_task(name="intents.resubmit_pending_refunds")
def resubmit_pending_refunds() -> int:
    # the name of existing beat entries; it inquires due refunds (never a second refund)
    return services.refunds_inquire_due()


@shared_task(name="intents.release_settled_funds")
def release_settled_funds() -> int:
    from apps.intents import ledger_hooks

    return ledger_hooks.release_settled_funds()
