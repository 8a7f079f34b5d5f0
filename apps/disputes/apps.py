from django.apps import AppConfig


class DisputesConfig(AppConfig):
    name = "apps.disputes"
    label = "disputes"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.disputes.psp_notifications import notification_handlers_register

        # events receives and stores PSP notifications; the ones about disputes (event type
        # "chargeback", both dialects) are applied here
        notification_handlers_register()
