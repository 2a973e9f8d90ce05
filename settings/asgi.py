"""
ASGI entry point of the demo: streaming.asgi's application (HTTP to Django, /ws/ to streaming/).

Run with `daphne settings.asgi:application` (or `manage.py runserver`, daphne being installed).
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")

from streaming.asgi import application

__all__ = ["application"]
