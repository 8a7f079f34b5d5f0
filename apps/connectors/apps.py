from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    """Merchants' PSP accounts: credentials, endpoints, fee schedules, health and breakers, and
    the gateway every PSP call goes through."""

    name = "apps.connectors"
    label = "connectors"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.connectors import checks  # noqa: F401  (registers the endpoint checks)
