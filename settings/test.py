"""With these settings, tests run faster and every process of a test shares one database."""

import hashlib
import os
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import BASE_DIR, DATABASES, INSTALLED_APPS, LOGGING, STREAMING, env

# GENERAL
# ------------------------------------------------------------------------------
SECRET_KEY = env("SECRET_KEY", default="test-only-secret-key")
DEBUG = False

# APPS
# ------------------------------------------------------------------------------
# A second, metrics-free user of streaming/ (docs/streaming.md walks through it).
INSTALLED_APPS = [*INSTALLED_APPS, "tests.exampleapp"]

# DATABASES
# ------------------------------------------------------------------------------
# A file, not :memory:, so servers and writer scripts started by tests see the same rows.
# It lives outside the checkout (SQLite leaves -wal/-shm files behind), in a directory of this
# user and checkout that every process of a run derives alike from the environment and
# BASE_DIR; TEST_DB_SUFFIX keeps concurrent runs of one checkout apart.
_SUFFIX = env("TEST_DB_SUFFIX", default="")
_CHECKOUT = hashlib.sha256(str(BASE_DIR).encode()).hexdigest()[:12]
TEST_DATABASE_DIR = Path(tempfile.gettempdir()) / f"live-metrics-tests-{os.getuid()}-{_CHECKOUT}"
TEST_DATABASE_DIR.mkdir(mode=0o700, exist_ok=True)
if TEST_DATABASE_DIR.stat().st_uid != os.getuid():
    raise ImproperlyConfigured(f"{TEST_DATABASE_DIR} belongs to another user: remove it.")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(TEST_DATABASE_DIR / f"db{_SUFFIX}.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}{_SUFFIX}"}
# A second database, "other", for tests of writes made with using="other": streaming must
# read the payload back from the database written. Only tests that ask for it create it.
_OTHER = str(TEST_DATABASE_DIR / f"db-other{_SUFFIX}.sqlite3")
DATABASES["other"] = {
    "ENGINE": "django.db.backends.sqlite3",
    "NAME": _OTHER,
    "TEST": {"NAME": _OTHER},
    "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
}

# STREAMING
# ------------------------------------------------------------------------------
# The sockets' heartbeat frame is off, so tests reading a socket see only the frames they
# expect; the browser tests of the keepalive turn it on in their server's environment.
KEEPALIVE_SECONDS = env.float("STREAMING_KEEPALIVE_SECONDS", default=0)
STREAMING = {**STREAMING, "KEEPALIVE_SECONDS": KEEPALIVE_SECONDS}

# Connections close after each use, as Django's own test runs expect: a kept one in a worker
# thread of the test process would hold the test database open at its teardown.
DATABASES["default"]["CONN_MAX_AGE"] = 0

# PASSWORDS
# ------------------------------------------------------------------------------
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# LOGGING
# ------------------------------------------------------------------------------
LOGGING = {
    **LOGGING,
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="WARNING")},
}
