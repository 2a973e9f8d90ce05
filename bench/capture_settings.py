"""Settings of bench/capture.py: bench.settings plus the "off" database (CAPTURE_OFF_URL)."""

from bench.settings import *  # noqa: F403
from bench.settings import DATABASES, env

DATABASES["off"] = {**env.db_url_config(env("CAPTURE_OFF_URL"))}
# Both sides get the same connection options (SQLite: WAL, IMMEDIATE, synchronous=NORMAL).
DATABASES["off"]["OPTIONS"] = dict(DATABASES["default"].get("OPTIONS", {}))
DATABASES["off"]["ATOMIC_REQUESTS"] = DATABASES["default"]["ATOMIC_REQUESTS"]
