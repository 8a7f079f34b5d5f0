from celery import shared_task

from apps.disputes import services


@shared_task(name="disputes.check_deadlines", ignore_result=True)
def check_dispute_deadlines() -> dict:
    return services.disputes_check_deadlines()
