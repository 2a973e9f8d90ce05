"""
System checks of streaming/: misconfigurations that would otherwise fail silently.

Their ids, messages and fixes are listed in docs/reference.md.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import models

from streaming.registry import Source, Stream, all_streams


@register()
def check_daphne(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Checks that `manage.py runserver` serves WebSockets where daphne is meant to (W002-W004)."""
    apps = list(settings.INSTALLED_APPS)
    if "daphne" not in apps:
        if settings.DEBUG and importlib.util.find_spec("daphne") is not None:
            return [
                Warning(
                    'daphne is installed but not in INSTALLED_APPS: "runserver" serves no '
                    "WebSockets, and /ws/stream/ is not found.",
                    hint='Add "daphne" first in INSTALLED_APPS, or silence streaming.W003 '
                    "when you develop under another ASGI server.",
                    id="streaming.W003",
                )
            ]
        return []
    messages: list[CheckMessage] = []
    if apps[0] != "daphne":
        messages.append(
            Warning(
                '"daphne" is not first in INSTALLED_APPS.',
                hint='Move "daphne" first, so that its runserver (ASGI, with WebSockets) '
                "replaces the runserver of django.contrib.staticfiles and of Django.",
                id="streaming.W002",
            )
        )
    if not getattr(settings, "ASGI_APPLICATION", None):
        messages.append(
            Warning(
                "ASGI_APPLICATION is not set: daphne's runserver refuses to start.",
                hint='Set ASGI_APPLICATION = "<project>.asgi.application", the module whose '
                "`application` is streaming.asgi's.",
                id="streaming.W004",
            )
        )
    return messages


@register(Tags.models)
def check_sources(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Checks every registered Source: a readable primary key (E001), attnames only (E002)."""
    messages: list[CheckMessage] = []
    for stream in all_streams():
        for source in stream.sources:
            messages.extend(_check_primary_key(stream, source))
            messages.extend(_check_fields(stream, source))
    return messages


def _check_primary_key(stream: Stream, source: Source) -> Iterable[CheckMessage]:
    meta = source.model._meta
    if meta.abstract:
        problem = "is abstract: its rows live in the tables of its subclasses"
    elif meta.pk is None:
        problem = "has no primary key"
    elif isinstance(meta.pk, models.CompositePrimaryKey):
        problem = "has a composite primary key"
    else:
        return
    yield Error(
        f"Stream {stream.name!r} observes {meta.label}, which {problem}.",
        hint="streaming/ reads a changed row back by its single-column primary key: observe "
        "a concrete model with one (the default `id` will do).",
        obj=source.model,
        id="streaming.E001",
    )


def _check_fields(stream: Stream, source: Source) -> Iterable[CheckMessage]:
    meta = source.model._meta
    if meta.abstract:
        return
    attnames = {field.attname for field in meta.concrete_fields}
    for name in source.fields:
        if name in attnames:
            continue
        field = next((f for f in meta.concrete_fields if f.name == name), None)
        hint = (
            f"Use {field.attname!r}: keys() may read attnames only."
            if field is not None
            else f"Name concrete fields of {meta.label} by attname, e.g. "
            f"{', '.join(sorted(attnames)[:3])}."
        )
        yield Error(
            f"Stream {stream.name!r}: Source({meta.label}).fields has {name!r}, not an attname "
            f"of {meta.label}.",
            hint=hint,
            obj=source.model,
            id="streaming.E002",
        )
