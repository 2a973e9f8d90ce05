"""App configuration for streaming/."""

from django.apps import AppConfig


class StreamingConfig(AppConfig):
    """Holds the stream registry; apps call streaming.register() from their own ready()."""

    name = "streaming"
    verbose_name = "Live streams"

    def ready(self) -> None:
        """Registers the system checks (streaming.checks, docs/reference.md)."""
        from streaming import checks  # noqa: F401
