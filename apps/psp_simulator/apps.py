from django.apps import AppConfig


class PspSimulatorConfig(AppConfig):
    """Registered only so `manage.py simulator_faults` is found; the simulator has no models."""

    name = "apps.psp_simulator"
    label = "psp_simulator"
    verbose_name = "PSP simulator"
