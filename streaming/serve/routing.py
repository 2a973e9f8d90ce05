"""WebSocket URL patterns of streaming/: include them in the project's ASGI router."""

from django.urls import path

from streaming.serve.consumer import StreamConsumer

websocket_urlpatterns = [
    path("ws/stream/", StreamConsumer.as_asgi()),
]
