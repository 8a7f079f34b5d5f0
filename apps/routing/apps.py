from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "apps.routing"
    label = "routing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.connectors.changes import on_connector_change
        from apps.routing.cache import generation_bump

        # compiled routing caches the merchant's connectors: drop it when one changes
        on_connector_change(generation_bump)
