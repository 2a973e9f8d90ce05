"""App configuration of the example app, installed by settings.test only."""

from django.apps import AppConfig


class ExampleAppConfig(AppConfig):
    """Registers the `exampleapp.board` stream, as any app using streaming/ would."""

    name = "tests.exampleapp"
    label = "exampleapp"
    verbose_name = "Example: boards of notes"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Called once apps are loaded: registers the streams."""
        from tests.exampleapp import streams

        streams.register()
