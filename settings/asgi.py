"""
ASGI entry point: HTTP goes to Django, /ws/ to the streaming consumer.

Run with `daphne settings.asgi:application` (or `manage.py runserver`, daphne being installed).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")
# Load Django's apps before importing anything that touches models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from streaming.serve.middleware import PathRouter, SessionUserMiddleware  # noqa: E402
from streaming.serve.origin import OriginValidator  # noqa: E402
from streaming.serve.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginValidator(SessionUserMiddleware(PathRouter(websocket_urlpatterns))),
    }
)
