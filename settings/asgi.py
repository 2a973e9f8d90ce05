"""
ASGI entry point of the demo: streaming.asgi's application (HTTP to Django, /ws/ to streaming/).

Run with `daphne settings.asgi:application` (or `manage.py runserver`, daphne being installed).
"""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")

# A server process holds every socket's objects (about a million at 5,000 sockets), which
# CPython's default thresholds (700, 10, 10) re-scan in full every 3-5 s under load: a
# 250-350 ms pause of every socket. Rarer young collections promote fewer short-lived
# objects, so full ones stop in steady state (docs/deploy.md, docs/benchmarks.md).
GC_THRESHOLDS = (20_000, 10, 100)
gc.set_threshold(*GC_THRESHOLDS)

from streaming.asgi import application  # noqa: E402

__all__ = ["application"]
