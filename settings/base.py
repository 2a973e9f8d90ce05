"""
Settings shared by every environment.

Everything deployment-specific is read from the environment; dev, test and prod only
change defaults, never add behaviour.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

# GENERAL
# ------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#debug
DEBUG = env.bool("DEBUG", default=False)
# https://docs.djangoproject.com/en/5.2/ref/settings/#secret-key
SECRET_KEY = env("SECRET_KEY", default="")
# https://docs.djangoproject.com/en/5.2/ref/settings/#allowed-hosts
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
# https://docs.djangoproject.com/en/5.2/ref/settings/#csrf-trusted-origins
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# https://docs.djangoproject.com/en/5.2/ref/settings/#time-zone
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_TZ = True
LANGUAGE_CODE = "en-us"
USE_I18N = False
ROOT_URLCONF = "settings.urls"
ASGI_APPLICATION = "settings.asgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# DATABASES
# ------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#databases
# An empty DATABASE_URL means the default too, as it does for REDIS_URL.
DATABASE_URL = env("DATABASE_URL", default="") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
# One request, one transaction: a failed write leaves nothing half-done, and broadcasts
# wait for the request's commit.
DATABASES["default"]["ATOMIC_REQUESTS"] = True
# Persistent connections: the servers' hubs re-read keys from sync threads, and a new
# PostgreSQL connection per re-read cost ~10 ms of the relay path (docs/benchmarks.md).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes write at once (server, scripts, simulate): WAL lets readers run
    # during writes, and IMMEDIATE transactions wait for the lock instead of failing.
    # synchronous=NORMAL is SQLite's advice for WAL: a commit survives a crash of any
    # process without an fsync of its own; only a power loss may undo the last commits
    # (docs/deploy.md). The fsync was a third of a save's time.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )

# APPS
# ------------------------------------------------------------------------------
INSTALLED_APPS = [
    # daphne first, so that `runserver` serves ASGI (HTTP and WebSockets).
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "streaming",
    "metrics",
]

# MIDDLEWARE
# ------------------------------------------------------------------------------
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# TEMPLATES
# ------------------------------------------------------------------------------
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
                "streaming.context_processors.streaming",
            ],
        },
    },
]

# STATIC
# ------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#static-url
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
# Serve straight from the source folders when nothing was collected (dev, tests).
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)
# Serving from the sources, there is no collected root to look for (nor to warn about).
WHITENOISE_AUTOREFRESH = WHITENOISE_USE_FINDERS

# SECURITY
# ------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Request bodies past this size are refused before parsing (hostile clients).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=64 * 1024)


# CHANNELS AND STREAMING
# ------------------------------------------------------------------------------
# https://channels.readthedocs.io/en/latest/topics/channel_layers.html
def channel_settings(redis_url: str) -> tuple[dict, dict]:
    """
    Returns CHANNEL_LAYERS and STREAMING for a Redis URL. Without one, one machine needs
    nothing more: every server reads the database's change log (docs/deploy.md).
    """
    if not redis_url:
        return {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}, {}
    layers = {
        "default": {
            # Pub/sub: one PUBLISH per broadcast whatever the number of subscribers, and
            # subscriptions come back by themselves after a Redis restart.
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            # redis-py 8 caps an async pool at 100 connections and raises past it.
            "CONFIG": {"hosts": [{"address": redis_url, "max_connections": 1000}]},
        }
    }
    return layers, {}


REDIS_URL = env("REDIS_URL", default="")
CHANNEL_LAYERS, STREAMING = channel_settings(REDIS_URL)

# REST FRAMEWORK
# ------------------------------------------------------------------------------
# https://www.django-rest-framework.org/api-guide/settings/
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an unauthenticated request then gets 401 with WWW-Authenticate.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.DjangoModelPermissionsOrAnonReadOnly",
    ],
    # Bodies are capped in size and nesting before parsing (metrics/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "metrics.parsers.GuardedJSONParser",
        "rest_framework.parsers.FormParser",
        "metrics.parsers.GuardedMultiPartParser",
    ],
    "EXCEPTION_HANDLER": "metrics.parsers.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "metrics.pagination.StrictLimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "metrics.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Live metrics API",
    "DESCRIPTION": "Series and metrics; every write is broadcast live over /ws/stream/.",
    "VERSION": "1.0.0",
    # Swagger UI's files come from the sidecar package, not a CDN: /api/docs/ works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# LOGGING
# ------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}

# AUTH
# ------------------------------------------------------------------------------
LOGIN_URL = "/admin/login/"
