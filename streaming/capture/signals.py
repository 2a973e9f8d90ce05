"""
Signal receivers: turn saves and deletes of observed models into keys to broadcast.

Every write path (admin, REST, ORM scripts, async ORM) reaches here through Django's own
signals; bulk QuerySet calls reach here through streaming.capture.querysets.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from django.db import connections, models
from django.db.models.signals import post_delete, post_save, pre_delete, pre_save

from streaming import registry
from streaming.capture.django_private import others_receive
from streaming.capture.transactions import schedule
from streaming.publish.publisher import publisher

logger = logging.getLogger("streaming.capture.signals")

# Instance attribute holding the key fields as the database had them right before a write.
_STORED = "_streaming_stored"


def observe(model: type[models.Model]) -> None:
    """Connects the receivers for `model` (idempotent)."""
    uid = f"streaming:{model._meta.label}"
    pre_save.connect(_before_save, sender=model, dispatch_uid=uid, weak=False)
    post_save.connect(_saved, sender=model, dispatch_uid=uid, weak=False)
    pre_delete.connect(_before_delete, sender=model, dispatch_uid=uid, weak=False)
    post_delete.connect(_deleted, sender=model, dispatch_uid=uid, weak=False)


def _before_save(
    sender: type[models.Model],
    instance: models.Model,
    raw: bool = False,
    using: str = "default",
    **kwargs: Any,
) -> None:
    if raw and not any(stream.include_raw for stream, _ in registry.sources_for(sender)):
        return
    # The broadcaster warms up while this write goes on to its commit.
    publisher.prepare(using)
    setattr(instance, _STORED, stored_keys_row(sender, instance, using))


def _saved(
    sender: type[models.Model],
    instance: models.Model,
    created: bool,
    raw: bool = False,
    using: str = "default",
    **kwargs: Any,
) -> None:
    stored = instance.__dict__.pop(_STORED, None)
    for stream, source in registry.sources_for(sender):
        if raw and not stream.include_raw:
            continue
        keys = keys_of(source, instance, using)
        if stored is not None:
            keys.update(keys_of(source, stored, using))
        schedule(stream.name, keys, using)


def _before_delete(
    sender: type[models.Model],
    instance: models.Model,
    using: str = "default",
    origin: Any = None,
    **kwargs: Any,
) -> None:
    publisher.prepare(using)
    # A cascade or QuerySet.delete() loaded its rows just now; an instance deleted by
    # itself may have been loaded long ago, and moved since by another process.
    if origin is instance:
        setattr(instance, _STORED, stored_keys_row(sender, instance, using))


def _deleted(
    sender: type[models.Model], instance: models.Model, using: str = "default", **kwargs: Any
) -> None:
    stored = instance.__dict__.pop(_STORED, None)
    for stream, source in registry.sources_for(sender):
        schedule(stream.name, keys_of(source, stored or instance, using), using)


def stored_keys_row(
    model: type[models.Model], instance: models.Model, using: str
) -> SimpleNamespace | None:
    """
    Returns the instance's key fields as its row holds them now (None for a new row).

    The instance's own values may be stale (another process moved the row since it was
    loaded); the row's are what subscribers were last sent. Inside a transaction the row
    is locked on databases that can, so it cannot move again before this write commits.
    """
    fields = registry.key_fields(model)
    meta = model._meta
    if not fields or instance.pk is None:
        return None
    if set(fields) <= {meta.pk.attname}:
        # Keys made of the primary key only cannot move.
        return None
    if instance._state.adding and all(f.has_default() for f in meta.pk_fields):
        # Django inserts such an instance without trying an UPDATE first.
        return None
    rows = model._base_manager.db_manager(using).filter(pk=instance.pk).values(*fields)
    connection = connections[using]
    if connection.in_atomic_block and connection.features.has_select_for_update:
        rows = rows.select_for_update(**_lock_self_only(connection))
    row = next(iter(rows), None)
    return SimpleNamespace(**row) if row is not None else None


def _lock_self_only(connection: Any) -> dict[str, Any]:
    """Returns select_for_update() arguments that lock the model's own rows only."""
    return {"of": ("self",)} if connection.features.has_select_for_update_of else {}


def others_listen_to_deletes(model: type[models.Model]) -> bool:
    """Returns whether anything but streaming receives `model`'s delete signals."""
    return others_receive(model, ((pre_delete, _before_delete), (post_delete, _deleted)))


def schedule_objects(model: type[models.Model], objs: Iterable[Any], using: str) -> None:
    """Schedules the keys of each object (instances or rows with the key fields)."""
    for stream, source in registry.sources_for(model):
        keys: set[Any] = set()
        for obj in objs:
            keys.update(keys_of(source, obj, using))
        schedule(stream.name, keys, using)


def keys_of(source: registry.Source, obj: Any, using: str) -> set[Any]:
    """
    Returns the keys `obj` affects. An object whose attributes keys() cannot read (say a
    timestamp assigned as a string, which the database accepted) is read back by pk.
    """
    try:
        return set(source.keys(obj))
    except Exception:
        pk = getattr(obj, "pk", None)
    manager = source.model._base_manager.db_manager(using)
    row = manager.filter(pk=pk).values(*source.fields).first() if pk is not None else None
    try:
        if row is not None:
            return set(source.keys(SimpleNamespace(**row)))
    except Exception:
        pass
    # The write itself succeeded: say what is not broadcast instead of failing it.
    logger.exception("streaming: cannot tell the keys of %s pk=%r", source.model._meta.label, pk)
    return set()
