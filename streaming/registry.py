"""The streams apps register, and the model sources each one observes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import models


class InvalidParams(ValueError):
    """Raised by a stream's params function when subscribe params are malformed (400)."""


class StreamNotFound(LookupError):
    """Raised when a stream, or the thing a key names, does not exist (404)."""


@dataclass(frozen=True)
class AllKeys:
    """Stands for every key starting with `prefix` that has subscribers somewhere."""

    prefix: str


KeysFunc = Callable[[Any], Iterable["str | AllKeys"]]


@dataclass(frozen=True)
class Source:
    """
    A model a stream observes. `keys` maps an object to the keys it affects and may
    read only `fields` (attnames), so that old values and bulk rows can stand in for it.
    """

    model: type[models.Model]
    keys: KeysFunc
    fields: tuple[str, ...]


@dataclass(frozen=True)
class Stream:
    """
    A named live stream.

    `params` turns subscribe params into a key (raising InvalidParams or StreamNotFound),
    `payload(key, using)` returns the key's JSON-ready state or None once it is gone, and
    `permission(user, key)` says who may subscribe. `batch_permission(user, keys)`, optional,
    returns the allowed ones of many keys at once (the periodic re-check uses it).
    """

    name: str
    sources: tuple[Source, ...]
    params: Callable[[Mapping[str, Any]], str]
    payload: Callable[[str, str | None], dict[str, Any] | None]
    permission: Callable[[Any, str], bool]
    include_raw: bool = False
    batch_permission: Callable[[Any, Sequence[str]], Iterable[str]] | None = None

    def permissions(self, user: Any, keys: Sequence[str]) -> set[str]:
        """
        Returns which of `keys` `user` may subscribe to: in one batch_permission call if the
        stream has one, else one permission() call per key.
        """
        if self.batch_permission is None:
            return {key for key in keys if self.permission(user, key)}
        return set(self.batch_permission(user, keys)) & set(keys)


_streams: dict[str, Stream] = {}
_sources: dict[type[models.Model], list[tuple[Stream, Source]]] = {}
# key_fields() per model, read on every save: rebuilt when streams change.
_key_fields: dict[type[models.Model], tuple[str, ...]] = {}
# Called with each observed model (streaming.capture connects its signal receivers).
_listeners: list[Callable[[type[models.Model]], None]] = []


def on_observe(listener: Callable[[type[models.Model]], None]) -> None:
    """Calls `listener` with every observed model, now and as streams are registered."""
    _listeners.append(listener)
    for model in list(_sources):
        listener(model)


def register(stream: Stream) -> Stream:
    """Registers a stream and starts observing its models; call it from AppConfig.ready()."""
    if stream.name in _streams:
        if _streams[stream.name] == stream:
            return stream
        raise ValueError(f"A different stream is already registered as {stream.name!r}.")
    _streams[stream.name] = stream
    for source in stream.sources:
        _sources.setdefault(source.model, []).append((stream, source))
        for listener in _listeners:
            listener(source.model)
    _key_fields.clear()
    return stream


def unregister(name: str) -> None:
    """Removes a stream; its models stay connected but no longer map to it."""
    stream = _streams.pop(name)
    for source in stream.sources:
        _sources[source.model] = [p for p in _sources[source.model] if p[0] is not stream]
    _key_fields.clear()


def get_stream(name: str) -> Stream:
    """Returns the stream registered under `name`, or raises StreamNotFound."""
    try:
        return _streams[name]
    except (KeyError, TypeError):
        raise StreamNotFound(f"Unknown stream {name!r}.") from None


def all_streams() -> list[Stream]:
    """Returns every registered stream."""
    return list(_streams.values())


def sources_for(model: type[models.Model]) -> list[tuple[Stream, Source]]:
    """Returns the (stream, source) pairs observing `model`."""
    return _sources.get(model, [])


def model_for_label(label: str) -> type[models.Model] | None:
    """Returns the observed model whose `_meta.label_lower` is `label`, if any."""
    for model in _sources:
        if model._meta.label_lower == label:
            return model
    return None


def key_fields(model: type[models.Model]) -> tuple[str, ...]:
    """Returns the attnames any stream's keys() reads on `model`."""
    cached = _key_fields.get(model)
    if cached is None:
        fields: dict[str, None] = {}
        for _, source in sources_for(model):
            fields.update(dict.fromkeys(source.fields))
        cached = _key_fields[model] = tuple(fields)
    return cached
