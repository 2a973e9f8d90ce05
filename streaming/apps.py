"""App configuration for streaming/."""

from django.apps import AppConfig


class StreamingConfig(AppConfig):
    """Holds the stream registry; apps call streaming.register() from their own ready()."""

    name = "streaming"
    verbose_name = "Live streams"
