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
# The platform's PSP simulator in tests: a test that needs one starts its own and registers it
# here (tests/intents/conftest.py: platform_simulator). By default the discard port, where
# nothing listens, so a connector no test pointed at a simulator reaches nothing (and never a
# developer's running `make run` simulator).
SIMULATOR_URL = env("TEST_SIMULATOR_URL", "http://127.0.0.1:9")
