"""The system checks of streaming/ (streaming/checks.py): each id, when it fires and when not."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import models
from django.test.utils import isolate_apps

import streaming
from streaming import checks
from tests.exampleapp.models import Note

DEMO_APPS = ["daphne", "django.contrib.staticfiles", "channels", "streaming"]


def ids(messages) -> list[str]:
    """Returns the ids of check messages."""
    return [message.id for message in messages]


def stream_of(*sources: streaming.Source) -> streaming.Stream:
    """Returns a stream observing `sources`, never registered."""
    return streaming.Stream(
        name="checks.test",
        sources=sources,
        params=lambda params: "key",
        payload=lambda key, using: {},
        permission=lambda user, key: True,
    )


def test_no_channel_layers_with_debug_on_passes_check_at_warning_level(settings):
    """Tests that `check --fail-level WARNING` is clean with no CHANNEL_LAYERS, DEBUG on."""
    del settings.CHANNEL_LAYERS
    settings.DEBUG = True
    call_command("check", "--fail-level", "WARNING")


@pytest.mark.parametrize(
    ("apps", "debug", "expected"),
    [
        (DEMO_APPS, True, []),
        (["channels", "daphne", "streaming"], True, ["streaming.W002"]),
        (["django.contrib.staticfiles", "streaming"], True, ["streaming.W003"]),
        # DEBUG off: servers are started by name (daphne mysite.asgi:application).
        (["django.contrib.staticfiles", "streaming"], False, []),
    ],
)
def test_w002_w003_daphne_first_in_installed_apps(settings, apps, debug, expected):
    """Tests W002 (daphne not first) and W003 (daphne installed, DEBUG on, not an app)."""
    settings.INSTALLED_APPS, settings.DEBUG = apps, debug
    assert ids(checks.check_daphne()) == expected


def test_w003_not_when_daphne_is_not_installed(settings, monkeypatch):
    """Tests that W003 stays quiet without daphne: the project serves with another server."""
    settings.INSTALLED_APPS, settings.DEBUG = ["streaming"], True
    monkeypatch.setattr(checks.importlib.util, "find_spec", lambda name: None)
    assert checks.check_daphne() == []


def test_w004_daphne_without_asgi_application(settings):
    """Tests W004: daphne's runserver refuses to start without ASGI_APPLICATION."""
    settings.INSTALLED_APPS = DEMO_APPS
    del settings.ASGI_APPLICATION
    assert ids(checks.check_daphne()) == ["streaming.W004"]


def test_registered_sources_of_the_suite_pass():
    """Tests that the streams the suite registers (metrics, exampleapp) pass E001 and E002."""
    assert streaming.get_stream("exampleapp.board")
    assert checks.check_sources() == []


@isolate_apps("tests.exampleapp")
def test_e001_a_source_without_a_single_column_primary_key(monkeypatch):
    """Tests E001 for an abstract model and for a composite primary key."""

    class Base(models.Model):
        value = models.IntegerField()

        class Meta:
            abstract = True

    class Pair(models.Model):
        pk = models.CompositePrimaryKey("left", "right")
        left = models.IntegerField()
        right = models.IntegerField()

        class Meta:
            app_label = "exampleapp"

        def __str__(self) -> str:
            return f"{self.left},{self.right}"

    stream = stream_of(
        streaming.Source(Base, keys=lambda obj: [], fields=("value",)),
        streaming.Source(Pair, keys=lambda obj: [], fields=("left",)),
        streaming.Source(Note, keys=lambda obj: [], fields=("board_id",)),
    )
    monkeypatch.setattr(checks, "all_streams", lambda: [stream])
    messages = checks.check_sources()
    assert ids(messages) == ["streaming.E001", "streaming.E001"]
    assert [message.obj for message in messages] == [Base, Pair]
    assert "abstract" in messages[0].msg
    assert "composite primary key" in messages[1].msg


def test_e002_source_fields_must_be_attnames(monkeypatch):
    """Tests E002 for a relation's name (hinting its attname) and for an unknown field."""
    stream = stream_of(streaming.Source(Note, keys=lambda obj: [], fields=("board", "nope", "id")))
    monkeypatch.setattr(checks, "all_streams", lambda: [stream])
    messages = checks.check_sources()
    assert ids(messages) == ["streaming.E002", "streaming.E002"]
    assert "'board'" in messages[0].msg
    assert "Use 'board_id'" in messages[0].hint
    assert "'nope'" in messages[1].msg
