"""App config of the DCRF peer."""

from django.apps import AppConfig


class ObservedConfig(AppConfig):
    """Imports the consumer at startup: DCRF's signal receivers exist only where it is."""

    name = "bench.peers.dcrf.observed"
    label = "observed"

    def ready(self) -> None:
        """Connects the model observer in every process, writers included (DCRF #40)."""
        from bench.peers.dcrf.observed import consumers  # noqa: F401
