from django.apps import AppConfig


class IntentsConfig(AppConfig):
    name = "apps.intents"
    label = "intents"
    default_auto_field = "django.db.models.BigAutoField"
