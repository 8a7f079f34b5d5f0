from celery import shared_task

from apps.connectors import services


@shared_task(name="connectors.evaluate_connector_health")
def evaluate_connector_health() -> int:
    """Disables connectors whose rolling error rate crossed the threshold."""
    return services.connectors_health_evaluate()


@shared_task(name="connectors.probe_disabled_connectors")
def probe_disabled_connectors() -> int:
    """Probes automatically disabled connectors and re-enables those that answer again."""
    return services.connectors_probe_disabled()
