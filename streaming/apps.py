"""App configuration for streaming/."""

from django.apps import AppConfig


class StreamingConfig(AppConfig):
    """Holds the stream registry; apps call streaming.register() from their own ready()."""

    name = "streaming"
    verbose_name = "Live streams"

    def ready(self) -> None:
        """
        Connects the capture (signal receivers, and the triggers installed after migrate) and
        registers the system checks (docs/reference.md).
        """
        from django.db.models.signals import post_migrate

        from streaming import checks, registry  # noqa: F401
        from streaming.capture import install, signals

        registry.on_observe(signals.observe)
        post_migrate.connect(install.after_migrate, sender=self)
