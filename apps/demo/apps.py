from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo data for `make run`: depends on every app's services, and nothing depends on it."""

    name = "apps.demo"
    label = "demo"
