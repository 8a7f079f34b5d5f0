from django.apps import AppConfig


class MerchantsConfig(AppConfig):
    name = "apps.merchants"
    label = "merchants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # every change of a key or merchant, however made, invalidates the API key cache
        from apps.merchants import key_cache

        key_cache.connect_signals()
