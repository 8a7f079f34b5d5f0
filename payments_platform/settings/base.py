"""Settings shared by every environment. Everything that differs between machines comes from
environment variables with safe local defaults, so `make run` works on a fresh machine."""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    return env(name, "1" if default else "0").lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(env(name, str(default)))


SECRET_KEY = env("SECRET_KEY", "dev-insecure-secret-key-change-me-in-production-0123456789")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = [h for h in env("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in env("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "guardian",
    "apps.core",
    "apps.merchants",
    "apps.vault",
    "apps.ledger",
    "apps.connectors",
    "apps.routing",
    "apps.events",
    "apps.intents",
    "apps.payouts",
    "apps.money_audit",
    "apps.psp_simulator",
    "apps.demo",
    "apps.risk",
    "apps.reconciliation",
    "apps.observability",
    "apps.disputes",
]

MIDDLEWARE = [
    "apps.core.middleware.RequestIdMiddleware",
    # a database that is briefly away is a 503 with Retry-After, never a 500 or a debug page
    "apps.core.middleware.DatabaseUnavailableMiddleware",
    "corsheaders.middleware.CorsMiddleware",  # answers the browser's preflight for tokenization
    "apps.events.middleware.IdempotencyKeyContextMiddleware",
    "apps.core.middleware.ApiBodyLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "payments_platform.urls"

# CORS: only card tokenization is meant to be called from a browser (a checkout page with the
# publishable key, as Stripe.js does), so only that URL answers cross-origin requests; every
# other /v1/ endpoint takes the secret key and stays server-to-server. Any origin by default
# (merchants' shops live anywhere); CORS_ALLOWED_ORIGINS narrows it.
CORS_URLS_REGEX = r"^/v1/payment_methods$"
CORS_ALLOWED_ORIGINS = [o for o in env("CORS_ALLOWED_ORIGINS", "").split(",") if o]
CORS_ALLOW_ALL_ORIGINS = not CORS_ALLOWED_ORIGINS
CORS_ALLOW_METHODS = ["POST", "OPTIONS"]
CORS_ALLOW_HEADERS = ["authorization", "content-type", "idempotency-key"]
CORS_EXPOSE_HEADERS = ["Request-Id"]
CORS_ALLOW_CREDENTIALS = False
WSGI_APPLICATION = "payments_platform.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/payments_platform")
# Without the pool (Celery worker and beat, runserver), connections persist for
# DB_CONN_MAX_AGE seconds, checked before reuse: a Celery task that opened a fresh connection
# would pay a PostgreSQL backend fork each time, more than most tasks cost themselves.
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 300), conn_health_checks=True
    )
}
DATABASES["default"].setdefault("OPTIONS", {})
# Parameters bound by PostgreSQL, not spliced into the SQL text by psycopg: repeated statements
# become prepared statements (parsed and planned once per connection), which measured ~20 %
# less PostgreSQL CPU per payment (docs/benchmarks.md)
DATABASES["default"]["OPTIONS"]["server_side_binding"] = True
if env_bool("DB_POOL", False):
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool owns the connections
    # psycopg's own pool (Django >= 5.1): used by gunicorn in production and by `make bench`.
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": env_int("DB_POOL_MIN", 2),
        "max_size": env_int("DB_POOL_MAX", 10),
        "timeout": 10,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
# How long a process may serve its copy of an authenticated API key (apps.merchants.key_cache);
# any change reaches every process at once through Redis pub/sub, this is only the upper bound.
# 0 turns the cache off.
API_KEY_CACHE_SECONDS = env_int("API_KEY_CACHE_SECONDS", 10)


def redis_cache(url: str) -> dict:
    # a Redis that stops answering must cost a cache call seconds, not hang the thread
    return {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": url,
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }


CACHES = {"default": redis_cache(REDIS_URL)}

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row; the API never uses it

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# Bodies over 1 MiB are refused with a 413 in the error envelope (ApiBodyLimitMiddleware).
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
API_MAX_BODY_BYTES = 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apps.merchants.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["apps.merchants.api.permissions.SecretKeyRequired"],
    # DRF's JSON parser with a nesting cap and no NUL characters (apps/core/api/parsers.py)
    "DEFAULT_PARSER_CLASSES": ["apps.core.api.parsers.ApiJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "apps.core.api.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Payments Platform API",
    "DESCRIPTION": (
        "Payment orchestration with a double-entry ledger. Amounts are integers in the currency's "
        "minor unit. Every mutating POST accepts an `Idempotency-Key` header. Errors share one "
        'envelope: `{"error": {type, code, message, param, request_id}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/v1",
    # enums named "status" in several objects: name the shared ones explicitly
    "ENUM_NAME_OVERRIDES": {
        "WebhookEndpointStatusEnum": [("enabled", "enabled"), ("disabled", "disabled")],
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.core.api.schema.add_error_envelope_and_idempotency",
    ],
}

# Celery: Redis is the broker; results are not needed (state lives in PostgreSQL).
CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)


def celery_broker_transport(url: str) -> str | None:
    # kombu's Redis transport with the fix in payments_platform/celery.py (RedisChannel); other
    # brokers (sentinel://, amqp://) keep the transport their URL names
    if url.split("://", 1)[0] in ("redis", "rediss"):
        return "payments_platform.celery:RedisTransport"
    return None


CELERY_BROKER_TRANSPORT = celery_broker_transport(CELERY_BROKER_URL)
CELERY_TASK_IGNORE_RESULT = True
# Celery would otherwise close the database connection after every task (a backend fork per
# task); payments_platform/celery.py applies Django's CONN_MAX_AGE and health checks instead
CELERY_DB_REUSE_MAX = 100_000
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Broker outages (docs/operations.md): the worker and beat retry the broker forever (the
# default gives up after 100 attempts, about 45 minutes) and reconnect on their own.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# A task running when the connection drops finishes and is acknowledged over the new
# connection (RedisChannel); terminating it instead could cut a PSP call in half. Explicit
# because Celery 6 turns this on by default.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # an unacknowledged message is redelivered after this long: longer than any task runs
    "visibility_timeout": 3600,
    # a Redis that stops answering (host frozen, packets dropped) fails a publish, a BRPOP read
    # or an ack within seconds instead of hanging a web thread, beat or the worker forever;
    # every publisher handles the error (the beat sweeps are the backstop)
    "socket_connect_timeout": 3,
    "socket_timeout": 5,
    "socket_keepalive": True,
    # a publisher (web, beat, a task) that finds no broker connection tries once instead of
    # retrying for broker_connection_timeout (4 s, ~6 s with the sleeps) per publish: every
    # publish is best-effort with a sweep behind it. The worker's own connection retries
    # forever (broker_connection_max_retries above), unaffected by this.
    "max_retries": 0,
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

# AES-256-GCM keys for data at rest ("kid:base64", comma-separated; see apps/core/crypto.py).
# The default is a well-known development key: production must set its own.
DATA_ENCRYPTION_KEYS = env(
    "DATA_ENCRYPTION_KEYS", "dev1:ZGV2LW9ubHkta2V5LWRvLW5vdC11c2UtaW4tcHJvZCE="
)
DATA_ENCRYPTION_ACTIVE_KEY = env("DATA_ENCRYPTION_ACTIVE_KEY", "dev1")
# HMAC key for card fingerprints (equal cards match); stable across encryption-key rotation.
FINGERPRINT_KEY = env("FINGERPRINT_KEY", "dev-fingerprint-key-change-me")

# Platform knobs
IDEMPOTENCY_TTL_HOURS = env_int("IDEMPOTENCY_TTL_HOURS", 24)
# A claim older than this whose request never finished (process killed) may be taken over.
IDEMPOTENCY_LOCK_TIMEOUT_SECONDS = env_int("IDEMPOTENCY_LOCK_TIMEOUT_SECONDS", 300)
MAX_PAYMENT_AMOUNT = env_int("MAX_PAYMENT_AMOUNT", 99_999_999)  # in minor units, per charge
API_BASE_URL = env("API_BASE_URL", "http://127.0.0.1:8000")
# The PSP simulator (`make run` starts it and exports its address). Empty: no simulator, and no
# connector can use the "simulator" endpoint.
SIMULATOR_URL = env("SIMULATOR_URL", "http://127.0.0.1:8090")
# Merchant webhook endpoints in test mode may point at loopback and private addresses (a
# developer's own machine). Production turns it off: a test key must not reach the internal
# network. Live mode never may (apps/events/url_safety.py).
WEBHOOK_TEST_MODE_PRIVATE_TARGETS = env_bool("WEBHOOK_TEST_MODE_PRIVATE_TARGETS", True)
# Where connectors send their requests (card numbers and CVCs included): the platform's choice,
# never a merchant's (apps/routing/endpoints.py). Per connector type and mode, endpoint name ->
# base URL; a connector stores only the name. Live: the PSPs' documented production hosts only;
# test: their test hosts, plus "simulator" (SIMULATOR_URL/<type>/<account>) when SIMULATOR_URL is
# set. Stripe serves both modes from one host (https://docs.stripe.com/api, "Base URL"). Adyen's
# live Checkout URL carries the company's live URL prefix, a validated connector option
# (https://docs.adyen.com/development-resources/live-endpoints#live-url-prefix); its test host is
# https://checkout-test.adyen.com (https://docs.adyen.com/api-explorer/Checkout/overview).
PSP_ENDPOINTS = {
    "stripe": {
        "live": {"production": "https://api.stripe.com"},
        "test": {"test": "https://api.stripe.com"},
    },
    "adyen": {
        "live": {
            "production": "https://{live_url_prefix}-checkout-live.adyenpayments.com/checkout"
        },
        "test": {"test": "https://checkout-test.adyen.com"},
    },
}
# Confirm: how many PSP attempts (failover) and how much wall time one confirm may use.
CONFIRM_MAX_ATTEMPTS = env_int("CONFIRM_MAX_ATTEMPTS", 3)
CONFIRM_TIME_BUDGET_SECONDS = env_int("CONFIRM_TIME_BUDGET_SECONDS", 30)
# Unknown PSP outcomes: inquiries after these delays (seconds, minutes, then hours); after the
# last one the intent is flagged for ops review.
INQUIRY_BACKOFF_SECONDS = [5, 30, 120, 600, 3600, 6 * 3600, 24 * 3600]
# How long an inquiry may re-send the original authorization (same idempotency key) is each
# adapter's resend_window_seconds (Stripe 20 h of its 24 h, Adyen 30 of its 31 days).
VAULT_CVC_TTL_SECONDS = env_int("VAULT_CVC_TTL_SECONDS", 600)
# A capture, cancel or authorization whose PSP answer was not applied this long after its
# connector's own connect + read timeouts is resolved by the stalled-operation sweep: re-sent
# with the same idempotency key, or handed to the attempt inquiries.
PENDING_OPERATION_GRACE_SECONDS = env_int("PENDING_OPERATION_GRACE_SECONDS", 30)

# Money audit (`manage.py money_audit`, nightly from beat; apps/money_audit). How long a
# payment may stay processing, an attempt unknown or a refund pending, and an outbox row, a
# webhook delivery or a PSP notification past its schedule, before the audit calls it broken;
# the PSP simulator whose record it compares with ("" = none: the PSP-side checks are skipped,
# as they are when nothing answers there); log files (globs, comma-separated) to scan for card
# numbers.
MONEY_AUDIT_PROCESSING_GRACE_SECONDS = env_int("MONEY_AUDIT_PROCESSING_GRACE_SECONDS", 3600)
MONEY_AUDIT_UNRESOLVED_AFTER_SECONDS = env_int("MONEY_AUDIT_UNRESOLVED_AFTER_SECONDS", 3600)
MONEY_AUDIT_OVERDUE_AFTER_SECONDS = env_int("MONEY_AUDIT_OVERDUE_AFTER_SECONDS", 600)
MONEY_AUDIT_SIMULATOR_URL = env("MONEY_AUDIT_SIMULATOR_URL", SIMULATOR_URL)
MONEY_AUDIT_LOG_FILES = [p for p in env("MONEY_AUDIT_LOG_FILES", "").split(",") if p]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "apps.core.logging.RequestIdFilter"}},
    "formatters": {
        "plain": {
            "()": "apps.core.logging.RedactingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s%(trace)s] %(message)s",
        }
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
    },
}

# Periodic tasks, written into django-celery-beat's tables by `manage.py bootstrap_schedules`
# (run by `make run`). Staff edit them in the admin afterwards; the command never overwrites
# an existing schedule. Values: {"task", "every": seconds} or {"task", "crontab": "m h * * *"}.
PLATFORM_BEAT_SCHEDULES = {
    "purge expired idempotency records": {
        "task": "core.purge_expired_idempotency_records",
        "every": 3600,
    },
    "inquire unknown PSP outcomes": {"task": "intents.inquire_due_attempts", "every": 15},
    "resolve stalled captures and cancels": {
        "task": "intents.resolve_stalled_operations",
        "every": 30,
    },
    "expire old authorizations": {"task": "intents.expire_authorizations", "every": 3600},
    "re-send pending refunds": {"task": "intents.resubmit_pending_refunds", "every": 60},
    "relay outbox events (sweep)": {"task": "events.relay_outbox", "every": 10},
    "send due merchant webhooks": {"task": "events.deliver_due_webhooks", "every": 10},
    "process pending PSP webhooks (sweep)": {
        "task": "events.process_due_psp_webhooks",
        "every": 15,
    },
    "disable failing webhook endpoints": {
        "task": "events.disable_failing_endpoints",
        "every": 3600,
    },
    "evaluate connector health": {"task": "connectors.evaluate_connector_health", "every": 30},
    "probe disabled connectors": {"task": "connectors.probe_disabled_connectors", "every": 30},
    "automatic payouts": {"task": "payouts.run_scheduled", "every": 3600},
    "poll in-transit payouts": {"task": "payouts.poll_in_transit", "every": 60},
    "re-send pending payouts": {"task": "payouts.resubmit_pending", "every": 60},
    "release settled funds (pending -> available)": {
        "task": "intents.release_settled_funds",
        "every": 3600,
    },
    "money audit (nightly)": {"task": "money_audit.run", "crontab": "30 3 * * *"},
    "reconciliation (nightly)": {
        "task": "reconciliation.run_nightly",
        "crontab": os.environ.get("RECONCILIATION_CRONTAB", "0 2 * * *"),
        "timezone": os.environ.get("RECONCILIATION_TIME_ZONE", "UTC"),
    },
    # the dashboards' rollups (issue 17, docs/observability.md)
    "refresh dashboard rollups": {"task": "observability.refresh_rollups", "every": 60},
    "refresh dashboard rollups (nightly, last two days)": {
        "task": "observability.refresh_rollups_nightly",
        "crontab": "15 2 * * *",
    },
    "dispute deadlines (reminders, expiry)": {"task": "disputes.check_deadlines", "every": 900},
}

# Radar (apps/risk, docs/risk.md): the key of the velocity counters' keyed hashes, the Redis
# timeout on the payment path (fail open past it), when an open review is stale (the
# authorization window: 7 days)
RISK_VELOCITY_KEY = env("RISK_VELOCITY_KEY", "dev-risk-velocity-key-change-me")
RISK_REDIS_TIMEOUT_SECONDS = float(env("RISK_REDIS_TIMEOUT_SECONDS", "0.2"))
RISK_REVIEW_STALE_SECONDS = int(env("RISK_REVIEW_STALE_SECONDS", str(7 * 86400)))
# the transaction-risk-analysis exemption's ceiling per currency (minor units): the PSD2 band
# of the platform's fraud rate (100 EUR: fraud under 0.13 %; raise to 25000/50000 for lower)
RISK_TRA_LIMITS = {"eur": 10000, "gbp": 8500}
# Reconciliation (issue 14): where raw settlement reports are kept (hash-named, never
# rewritten)
RECONCILIATION_STORAGE_DIR = os.environ.get(
    "RECONCILIATION_STORAGE_DIR", str(BASE_DIR / ".local" / "settlement_reports")
)
# PostgreSQL work_mem for a report's load (its transaction only): a million-line match hashes
# and sorts in memory instead of spilling to disk
RECONCILIATION_WORK_MEM = os.environ.get("RECONCILIATION_WORK_MEM", "256MB")
# Observability (issue 17, docs/observability.md). /metrics answers a scrape that carries
# `Authorization: Bearer <METRICS_BEARER_TOKEN>` (empty: no token is accepted) or comes from an
# address in METRICS_ALLOWED_NETWORKS (comma-separated CIDRs; loopback by default); anyone else
# gets a 404. The Celery queues whose length is exported.
METRICS_BEARER_TOKEN = env("METRICS_BEARER_TOKEN", "")
METRICS_ALLOWED_NETWORKS = [
    n for n in env("METRICS_ALLOWED_NETWORKS", "127.0.0.1/32,::1/128").split(",") if n.strip()
]
METRICS_CELERY_QUEUES = [q for q in env("METRICS_CELERY_QUEUES", "celery").split(",") if q]

# Uploaded files (dispute evidence): on disk, never in a database text column.
MEDIA_ROOT = env("MEDIA_ROOT", str(BASE_DIR / ".local" / "media"))
MEDIA_URL = "/media/"
