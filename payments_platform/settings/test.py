from payments_platform.settings.base import *  # noqa: F403
from payments_platform.settings.base import celery_broker_transport, env, redis_cache

# Tests use their own Redis database so a developer's running stack is not disturbed.
REDIS_URL = env("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CACHES = {"default": redis_cache(REDIS_URL)}
CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_TRANSPORT = celery_broker_transport(CELERY_BROKER_URL)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast staff logins in tests
DEBUG = False
# Tests open connections from many short-lived threads: close them with each request/task, as
# before, instead of keeping one per thread.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
