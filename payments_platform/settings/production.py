from django.core.exceptions import ImproperlyConfigured

from payments_platform.settings.base import *  # noqa: F403
from payments_platform.settings.base import env, env_bool

SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY or SECRET_KEY.startswith("dev-insecure"):
    raise ImproperlyConfigured("SECRET_KEY must be set in production")
DEBUG = False
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = 31536000
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = False
# No PSP simulator in production unless one is configured on purpose: without it, no connector
# can send to the simulator endpoint.
SIMULATOR_URL = env("SIMULATOR_URL", "")
WEBHOOK_TEST_MODE_PRIVATE_TARGETS = env_bool("WEBHOOK_TEST_MODE_PRIVATE_TARGETS", False)

if DATA_ENCRYPTION_KEYS.startswith("dev1:"):  # noqa: F405
    raise ImproperlyConfigured("DATA_ENCRYPTION_KEYS must be set in production")
if FINGERPRINT_KEY.startswith("dev-"):  # noqa: F405
    raise ImproperlyConfigured("FINGERPRINT_KEY must be set in production")
