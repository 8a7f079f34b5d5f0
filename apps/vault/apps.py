from django.apps import AppConfig


class VaultConfig(AppConfig):
    name = "apps.vault"
    label = "vault"
    verbose_name = "Card vault"
    default_auto_field = "django.db.models.BigAutoField"
