"""With these settings, tests run faster and every process of a test shares one database."""

from .base import *  # noqa: F403
from .base import BASE_DIR, DATABASES, env

# GENERAL
# ------------------------------------------------------------------------------
SECRET_KEY = env("SECRET_KEY", default="test-only-secret-key")
DEBUG = False

# DATABASES
# ------------------------------------------------------------------------------
# A file, not :memory:, so servers and writer scripts started by tests see the same rows.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / ".test-db.sqlite3")}

# PASSWORDS
# ------------------------------------------------------------------------------
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# LOGGING
# ------------------------------------------------------------------------------
LOGGING["root"]["level"] = env("LOG_LEVEL", default="WARNING")  # noqa: F405
