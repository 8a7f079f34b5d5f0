from django.apps import AppConfig


class IntentsConfig(AppConfig):
    name = "apps.intents"
    label = "intents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.intents.psp_notifications import notification_handlers_register

        # events receives and stores PSP notifications; the ones about payments, captures,
        # cancellations and refunds are applied here
        notification_handlers_register()
