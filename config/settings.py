"""Blindspot settings, driven only by environment variables.

The embedded default (no variables set) is SQLite under var/, eager Celery, local storage and CPU.
Production (BLINDSPOT_ENV=production) demands every secret and refuses insecure defaults.
"""

import os
from pathlib import Path
from typing import cast

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_choice, env_float, env_int, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("BLINDSPOT_VAR_DIR", str(BASE_DIR / "var")))

ENVIRONMENT = env_choice("BLINDSPOT_ENV", "development", ("development", "production"))
PRODUCTION = ENVIRONMENT == "production"


def _env(name: str, default: str | None = None, *, required_in_production: bool = False) -> str:
    if PRODUCTION and required_in_production and not os.environ.get(name, "").strip():
        raise ImproperlyConfigured(f"{name} must be set when BLINDSPOT_ENV=production.")
    return env_str(name, default)


SECRET_KEY = _env(
    "DJANGO_SECRET_KEY",
    "insecure-development-key-not-for-production-use-0123456789abcdef",
    required_in_production=True,
)
DEBUG = env_bool("DJANGO_DEBUG", not PRODUCTION)
ALLOWED_HOSTS = [
    h.strip()
    for h in _env(
        "DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,testserver", required_in_production=True
    ).split(",")
    if h.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "csp",
    "audit",
    "validation",
    "reports",
    "web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "web.middleware.IdleSessionMiddleware",
    "web.middleware.SecondFactorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last: it answers a locked-out sign-in itself (web.views.accounts.locked_out).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "web.context_processors.navigation",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        _env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'blindspot.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0, minimum=0),
        # A persistent connection is checked before each request or task reuses it, so one
        # dropped by a database restart is replaced instead of failing its first query.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    if DATABASES["default"]["NAME"] not in ("", ":memory:"):
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # Concurrent readers while a worker writes: WAL and a busy timeout instead of "database locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        # Writers take the lock at BEGIN, so the audit chain's read-then-append cannot race.
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(_env("BLINDSPOT_STATIC_ROOT", str(VAR_DIR / "static")))

# Vendor-visible files (packages, reports). Never holds partner images.
MEDIA_ROOT = Path(_env("BLINDSPOT_MEDIA_ROOT", str(VAR_DIR / "media")))
# Partner images live here, outside MEDIA_ROOT, and no URL serves them.
SEQUESTERED_ROOT = Path(_env("BLINDSPOT_SEQUESTERED_ROOT", str(VAR_DIR / "sequestered")))
# The service's Ed25519 key that signs issued reports; created on first use outside production.
SIGNING_KEY_PATH = Path(
    _env(
        "BLINDSPOT_SIGNING_KEY_PATH",
        str(VAR_DIR / "keys" / "service-ed25519.pem"),
        required_in_production=True,
    )
)
SIGNING_KEY_AUTOCREATE = not PRODUCTION

if SEQUESTERED_ROOT.resolve().is_relative_to(MEDIA_ROOT.resolve()):
    raise ImproperlyConfigured("BLINDSPOT_SEQUESTERED_ROOT must lie outside BLINDSPOT_MEDIA_ROOT.")

# Partner dataset imports (archives are staged under SEQUESTERED_ROOT/incoming, never MEDIA_ROOT)
DATASET_MAX_ARCHIVE_BYTES = env_int("BLINDSPOT_DATASET_MAX_ARCHIVE_BYTES", 20 * 1024**3, minimum=1)
DATASET_MAX_UNPACKED_BYTES = env_int(
    "BLINDSPOT_DATASET_MAX_UNPACKED_BYTES", 64 * 1024**3, minimum=1
)
# Processes that hash, decode and de-identify files in parallel during an import.
DATASET_IMPORT_WORKERS = env_int("BLINDSPOT_DATASET_IMPORT_WORKERS", os.cpu_count() or 1, minimum=1)

# Model packages
PACKAGE_MAX_BYTES = env_int("BLINDSPOT_PACKAGE_MAX_BYTES", 512 * 1024 * 1024, minimum=1)
PACKAGE_MAX_UNPACKED_BYTES = env_int(
    "BLINDSPOT_PACKAGE_MAX_UNPACKED_BYTES", 1024 * 1024 * 1024, minimum=1
)
# Uploads that passed the cheap checks wait here for their smoke test (a worker reads them):
# private, served by no URL, never the content-addressed store; shared with the GPU workers.
PACKAGE_STAGING_ROOT = Path(
    _env("BLINDSPOT_PACKAGE_STAGING_ROOT", str(VAR_DIR / "package-staging"))
)
# Deliveries of one package's smoke-test task before it is refused (a worker lost each time).
PACKAGE_SMOKE_MAX_ATTEMPTS = env_int("BLINDSPOT_PACKAGE_SMOKE_MAX_ATTEMPTS", 3, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# Where Django spools uploads above FILE_UPLOAD_MAX_MEMORY_SIZE (default: the system's /tmp).
# Production points it inside SEQUESTERED_ROOT so that partner data never lands on /tmp.
FILE_UPLOAD_TEMP_DIR = os.environ.get("BLINDSPOT_FILE_UPLOAD_TEMP_DIR") or None
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# Model runner (the only process that loads vendor code)
# Torch threads of each sandboxed runner. Default: all cores but one, which the calling worker
# needs to decode and send the next batch while the model works (bench/runner.py: with every
# core given to the model, the client's share comes out of the model's time).
RUNNER_THREADS = env_int("BLINDSPOT_RUNNER_THREADS", max(1, (os.cpu_count() or 2) - 1), minimum=1)
RUNNER_BATCH_SIZE = env_int("BLINDSPOT_RUNNER_BATCH_SIZE", 32, minimum=1)
RUNNER_BATCH_TIMEOUT_S = env_float("BLINDSPOT_RUNNER_BATCH_TIMEOUT_S", 120, minimum=1)
# Running vendor code without isolation must be an explicit operator decision; reports say so.
RUNNER_ALLOW_UNSANDBOXED = env_bool("BLINDSPOT_RUNNER_ALLOW_UNSANDBOXED", False)
# Per-worker confinement of the model process: RLIMIT_DATA and RLIMIT_CPU (over its warm life).
RUNNER_MEMORY_LIMIT_BYTES = env_int(
    "BLINDSPOT_RUNNER_MEMORY_LIMIT_BYTES", 3 * 1024**3, minimum=64 * 1024**2
)
RUNNER_CPU_LIMIT_S = env_float("BLINDSPOT_RUNNER_CPU_LIMIT_S", 4 * 3600, minimum=1)
# A warm runner unused this long is closed (it holds a model and a process).
RUNNER_IDLE_SECONDS = env_float("BLINDSPOT_RUNNER_IDLE_SECONDS", 600, minimum=1)
# Where each runner puts the model: "auto" (cuda when this worker has a GPU, else cpu), "cpu" or
# "cuda"; AMP (autocast, bf16 where supported, else fp16) applies on cuda only. Both, like the
# threads and the batch size above, are settings of each worker, not of a run.
# Refused here, when the worker starts, rather than by every run it would take and fail.
RUNNER_DEVICE = env_choice(
    "BLINDSPOT_RUNNER_DEVICE",
    "auto",
    ("auto", "cpu", "cuda"),  # validation.runner.client.DEVICES
)
RUNNER_AMP = env_bool("BLINDSPOT_RUNNER_AMP", False)

# Runs: cases per shard (the unit a GPU worker takes from the queue; a shard must finish well
# within CELERY_TASK_TIME_LIMIT), and how many shards a run sends straight to each worker that
# already holds its package warm before the rest go to the shared `gpu` queue.
RUN_SHARD_SIZE = env_int("BLINDSPOT_RUN_SHARD_SIZE", 256, minimum=1)
RUN_AFFINITY_SHARDS_PER_WORKER = env_int("BLINDSPOT_RUN_AFFINITY_SHARDS", 4, minimum=0)
# A run's inference time budget from its start (seconds); spent, the run fails with "timeout".
# So does a model that times out this many times in a row (a batch, then its cases one by one).
# While a batch runs, a watcher reads the run's state every RUN_WATCH_INTERVAL_S and kills the
# model process at once when the run is cancelled or failed, or its budget is spent.
RUN_TIME_BUDGET_S = env_float("BLINDSPOT_RUN_TIME_BUDGET_S", 6 * 3600, minimum=1)
RUN_MAX_CONSECUTIVE_TIMEOUTS = env_int("BLINDSPOT_RUN_MAX_CONSECUTIVE_TIMEOUTS", 3, minimum=1)
RUN_WATCH_INTERVAL_S = env_float("BLINDSPOT_RUN_WATCH_INTERVAL_S", 1.0, minimum=0.05)
# GPU workers report themselves (warm packages, device) every WORKER_HEARTBEAT_S; one silent for
# WORKER_STALE_S is presumed dead and its unfinished shards go back to the shared queue.
WORKER_HEARTBEAT_S = env_float("BLINDSPOT_WORKER_HEARTBEAT_S", 10, minimum=0.1)
WORKER_STALE_S = env_float("BLINDSPOT_WORKER_STALE_S", 60, minimum=1)

# Celery: eager when no broker is configured (embedded default).
CELERY_TASK_ALWAYS_EAGER = not os.environ.get("CELERY_BROKER_URL")
# Eager mode never talks to a broker; kombu's in-memory transport keeps it from guessing one.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "memory://localhost/"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 3300, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 3600, minimum=1)
# Longer than the longest task, or Redis re-delivers a running task to a second worker.
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
    "visibility_timeout": env_int(
        "CELERY_VISIBILITY_TIMEOUT", CELERY_TASK_TIME_LIMIT + 600, minimum=1
    )
}
# A broker restart: a task queued meanwhile (a run's next stage, by the worker that finished the
# last one) waits for the broker for about 80 s rather than failing after kombu's default second;
# below gunicorn's 120 s timeout for a web request that queues. Workers reconnect for ever.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 20,
    "interval_start": 0,
    "interval_step": 1,
    "interval_max": 5,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Each worker also consumes its own queue ("<hostname>.dq2"): shards routed to a warm worker.
CELERY_WORKER_DIRECT = True
# `make serve` (scripts/serve.sh): CELERY_BROKER_URL=filesystem://, real workers on one machine
# with no broker server; messages are files under BLINDSPOT_BROKER_DIR (config/broker.py says
# what the transport lacks: no re-delivery after a hard kill, hence never in production).
if CELERY_BROKER_URL.startswith("filesystem://"):
    from config.broker import filesystem_transport_options

    if PRODUCTION:
        raise ImproperlyConfigured("A filesystem:// broker is for make serve; use Redis.")
    BROKER_DIR = Path(_env("BLINDSPOT_BROKER_DIR", str(VAR_DIR / "broker")))
    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_transport_options(BROKER_DIR)
    # Its pidbox queues would outlive their workers (no auto-delete); nothing here broadcasts.
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "validation.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # --- part "api" (issue 17): problem details, cursor pages, strict filters, the schema ---
    "DEFAULT_SCHEMA_CLASS": "validation.api.schema.ProblemAutoSchema",
    "EXCEPTION_HANDLER": "validation.api.errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "validation.api.listing.ApiCursorPagination",
    "DEFAULT_FILTER_BACKENDS": ["validation.api.listing.StrictQueryFilterBackend"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Blindspot API",
    "DESCRIPTION": "Independent blind validation of medical-imaging AI. Errors are RFC 9457 "
    "problem details (`application/problem+json`); lists are cursor-paginated (follow `next`).",
    "VERSION": "1.0.0",
    # The schema and its documentation pages are public: a new user reads them before any token.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Request and response components apart: uploads are binary in requests, not URIs.
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["validation.api.schema.exclude_schema_views"],
    # Swagger UI from drf-spectacular-sidecar's static files (ReDoc injects inline styles, which
    # the CSP refuses); templates/api/docs.html keeps everything in files of this host.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "PackageStatusEnum": "validation.models.PackageStatus",
        "RunStatusEnum": "validation.models.RunStatus",
        "ReportStatusEnum": "reports.models.Report.Status",
    },
}
# --- part "endpoints" (issue 17, item 3): the enums of me/, organisations/ and protocols/ ---
cast(dict, SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]).update(
    RoleEnum="validation.models.Role",
    OrganisationKindEnum="validation.models.OrganisationKind",
)

# Sign-in (web/): Django's auth behind django-axes (lockout) and django-otp (TOTP).
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
AUTHENTICATION_BACKENDS = [
    # First: it refuses a locked-out username before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Five wrong passwords for one username lock it for AXES_COOLOFF_MINUTES (the lock is by username,
# so a shared hospital NAT does not lock everyone out, and one user cannot be tried from many IPs).
AXES_FAILURE_LIMIT = env_int("BLINDSPOT_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_float("BLINDSPOT_LOGIN_LOCKOUT_MINUTES", 30, minimum=0.01) / 60
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "web.views.accounts.locked_out"
AXES_VERBOSE = False
# axes.W006 asks for the IP in the lockout key; locking by username alone is the decision above.
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
# Sessions end after this long without the person doing anything (live-update polls do not
# count); the cookie itself lasts a working day at most.
SESSION_IDLE_SECONDS = int(env_float("BLINDSPOT_SESSION_IDLE_MINUTES", 30, minimum=0.05) * 60)
SESSION_COOKIE_AGE = 12 * 3600
# Named API tokens (validation.services.tokens) expire this many days after creation; 0: never.
API_TOKEN_TTL_DAYS = env_int("BLINDSPOT_API_TOKEN_TTL_DAYS", 90, minimum=0)
# Part "client" (issue 17): POST /api/v1/auth/token/ per client address (DRF rate: n/sec|min|hour).
API_TOKEN_RATE = os.environ.get("BLINDSPOT_API_TOKEN_RATE", "10/min")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
OTP_TOTP_ISSUER = "Blindspot"
# No page loads anything from another host, runs inline script or may be framed.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("BLINDSPOT_LOG_LEVEL", "INFO")},
    # WeasyPrint and fontTools narrate every render step at INFO.
    "loggers": {
        **{name: {"level": "WARNING"} for name in ("weasyprint", "fontTools", "axes")},
        "celery": {"level": os.environ.get("BLINDSPOT_CELERY_LOG_LEVEL", "WARNING")},
    },
}

# Where the runner finds extracted model files (read-only bound into the sandbox).
RUNNER_CACHE_ROOT = Path(_env("BLINDSPOT_RUNNER_CACHE_ROOT", str(VAR_DIR / "runner-cache")))
