"""
Signal receivers: turn saves and deletes of observed models into keys to broadcast.

Every write path (admin, REST, ORM scripts, async ORM) reaches here through Django's own
signals; bulk QuerySet calls reach here through streaming.querysets.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from django.db import models
from django.db.models.signals import post_delete, post_init, post_save

from streaming import registry
from streaming.transactions import schedule

# Instance attribute holding the key fields' values as loaded or last saved.
_LOADED = "_streaming_loaded"
_MISSING = object()


def observe(model: type[models.Model]) -> None:
    """Connects the receivers for `model` (idempotent)."""
    uid = f"streaming:{model._meta.label}"
    post_init.connect(_remember, sender=model, dispatch_uid=uid, weak=False)
    post_save.connect(_saved, sender=model, dispatch_uid=uid, weak=False)
    post_delete.connect(_deleted, sender=model, dispatch_uid=uid, weak=False)


def _remember(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    # Only what is already loaded: reading a deferred field here would cost a query per row.
    values = instance.__dict__
    setattr(instance, _LOADED, {f: values.get(f, _MISSING) for f in registry.key_fields(sender)})


def _saved(
    sender: type[models.Model],
    instance: models.Model,
    created: bool,
    raw: bool = False,
    using: str = "default",
    **kwargs: Any,
) -> None:
    old = None if created else _old_values(sender, instance)
    for stream, source in registry.sources_for(sender):
        if raw and not stream.include_raw:
            continue
        keys = set(source.keys(instance))
        if old is not None:
            keys.update(source.keys(SimpleNamespace(**{f: old[f] for f in source.fields})))
        schedule(stream.name, keys, using)
    _remember(sender, instance)


def _deleted(
    sender: type[models.Model], instance: models.Model, using: str = "default", **kwargs: Any
) -> None:
    for stream, source in registry.sources_for(sender):
        schedule(stream.name, source.keys(instance), using)


def _old_values(sender: type[models.Model], instance: models.Model) -> dict[str, Any] | None:
    """Returns the key fields as they were before this save, or None if unknown."""
    loaded = getattr(instance, _LOADED, None)
    if loaded is not None and _MISSING not in loaded.values():
        return loaded
    # Built by hand with a pk, or loaded with those fields deferred: nothing to compare
    # against, and the new keys are broadcast anyway.
    return None


def schedule_objects(model: type[models.Model], objs: Iterable[Any], using: str) -> None:
    """Schedules the keys of each object (instances or rows with the key fields)."""
    for stream, source in registry.sources_for(model):
        keys: set[Any] = set()
        for obj in objs:
            keys.update(source.keys(obj))
        schedule(stream.name, keys, using)
