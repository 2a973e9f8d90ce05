"""
A QuerySet whose bulk writes broadcast too. Django sends no per-object signals for
update(), bulk_create() and bulk_update(); these overrides schedule every affected key,
old and new, with a constant number of extra queries (zero or one) per call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import SimpleNamespace
from typing import Any

from django.db import models, transaction

from streaming.registry import key_fields
from streaming.signals import schedule_objects


class StreamingQuerySet(models.QuerySet):
    """Use as a model's default manager (StreamingManager) so bulk writes are seen."""

    def update(self, **kwargs: Any) -> int:
        """Updates rows and broadcasts the keys they had before and have after."""
        fields = key_fields(self.model)
        if not fields:
            return super().update(**kwargs)
        pk = self.model._meta.pk.attname
        with transaction.atomic(using=self.db, savepoint=False):
            before = list(self.values(pk, *fields))
            count = super().update(**kwargs)
            after = self._rows_after(before, kwargs, fields, pk)
            schedule_objects(self.model, _rows(before + after, fields), self.db)
        return count

    def _rows_after(
        self, before: list[dict[str, Any]], changes: dict[str, Any], fields: Sequence[str], pk: str
    ) -> list[dict[str, Any]]:
        """Returns the key fields of the updated rows as they are now."""
        meta = self.model._meta
        assigned = {meta.get_field(name).attname: value for name, value in changes.items()}
        if not assigned.keys() & set(fields):
            return []
        if any(hasattr(v, "resolve_expression") for v in assigned.values()):
            # Computed in the database (F(), Case, ...): read the results back.
            manager = self.model._base_manager.using(self.db)
            return list(manager.filter(pk__in=[row[pk] for row in before]).values(pk, *fields))
        plain = {k: v.pk if isinstance(v, models.Model) else v for k, v in assigned.items()}
        return [{**row, **{k: v for k, v in plain.items() if k in fields}} for row in before]

    def bulk_create(
        self, objs: Iterable[models.Model], *args: Any, **kwargs: Any
    ) -> list[models.Model]:
        """Creates objects in bulk and broadcasts their keys."""
        with transaction.atomic(using=self.db, savepoint=False):
            created = super().bulk_create(objs, *args, **kwargs)
            schedule_objects(self.model, created, self.db)
        return created

    def bulk_update(
        self, objs: Iterable[models.Model], fields: Sequence[str], *args: Any, **kwargs: Any
    ) -> int:
        """Updates objects in bulk and broadcasts their old and new keys."""
        objs = list(objs)
        watched = key_fields(self.model)
        meta = self.model._meta
        with transaction.atomic(using=self.db, savepoint=False):
            old: list[Any] = []
            if watched and {meta.get_field(f).attname for f in fields} & set(watched):
                pk = meta.pk.attname
                manager = self.model._base_manager.using(self.db)
                rows = manager.filter(pk__in=[o.pk for o in objs]).values(pk, *watched)
                old = list(_rows(list(rows), watched))
            count = super().bulk_update(objs, fields, *args, **kwargs)
            schedule_objects(self.model, [*old, *objs], self.db)
        return count


def _rows(rows: list[dict[str, Any]], fields: Sequence[str]) -> list[SimpleNamespace]:
    """Returns rows as objects with the key fields as attributes, for Source.keys."""
    return [SimpleNamespace(**{f: row[f] for f in fields}) for row in rows]


StreamingManager = models.Manager.from_queryset(StreamingQuerySet)
