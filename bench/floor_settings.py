"""Settings of the raw-SQL floor (bench/floor.py): production settings, a bare Django + DRF."""

from payments_platform.settings.production import *  # noqa: F403

ROOT_URLCONF = "bench.floor"
# a bare Django + DRF application: the security and common middleware only
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
}
