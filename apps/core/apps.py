from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.core.db import cache_query_parsing

        cache_query_parsing()
        from apps.core.api import schema  # noqa: F401  registers the OpenAPI auth extension
