from celery import shared_task

from apps.connectors import selectors as connector_selectors
from apps.demo import services


@shared_task(
    name="demo.register_simulator_webhooks",
    autoretry_for=(services.SimulatorUnavailable,),
    retry_backoff=2,
    retry_backoff_max=30,
    max_retries=12,
)
def register_simulator_webhooks(
    connector_ids: list[int], platform_base_url: str, simulator_url: str
) -> dict:
    return services.psp_simulator_webhooks_register(
        connectors=connector_selectors.connectors_by_ids(ids=connector_ids),
        platform_base_url=platform_base_url,
        simulator_url=simulator_url,
    )


@shared_task(
    name="demo.seed_disputed_payment",
    autoretry_for=(services.SimulatorUnavailable,),
    retry_backoff=2,
    retry_backoff_max=30,
    max_retries=12,
)
def seed_disputed_payment(merchant_id: int) -> str | None:
    from apps.merchants.models import Merchant

    return services.demo_disputed_payment_seed(merchant=Merchant.objects.get(pk=merchant_id))
