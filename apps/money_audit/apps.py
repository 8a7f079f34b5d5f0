from django.apps import AppConfig


class MoneyAuditConfig(AppConfig):
    name = "apps.money_audit"
    label = "money_audit"
    verbose_name = "Money audit"
    default_auto_field = "django.db.models.BigAutoField"
