"""App configuration for metrics/."""

from django.apps import AppConfig


class MetricsConfig(AppConfig):
    """Registers the `metrics.week` stream, so every process that loads Django broadcasts."""

    name = "metrics"
    verbose_name = "Metrics"

    def ready(self) -> None:
        """Called once apps are loaded: registers the streams."""
        from metrics import streams

        streams.register()
