"""
A QuerySet whose bulk writes broadcast at once too. Django sends no per-object signals for
update(), bulk_create() and bulk_update(), and one per row for delete(); these overrides
schedule every affected key, old and new, once, with a constant number of extra queries.

This is the fast path only: the database's triggers capture every committed write and each
server's relay delivers it (streaming/capture/triggers.py). So rows are read without locks
and the write runs exactly as Django's own: a row another transaction moves meanwhile, or a
read Django's SQL allows but a plain SELECT does not, costs latency, never a failed write.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from contextlib import nullcontext
from functools import partial, reduce
from operator import or_
from types import SimpleNamespace
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import DatabaseError, connections, models, transaction

from streaming.capture.django_private import KeysReadCollector
from streaming.capture.signals import others_listen_to_deletes, schedule_objects
from streaming.publish.publisher import publisher
from streaming.registry import key_fields

logger = logging.getLogger("streaming.capture.querysets")

Row = dict[str, Any]


class StreamingQuerySet(models.QuerySet):
    """Use as a model's default manager (StreamingManager) so bulk writes are seen."""

    def update(self, **kwargs: Any) -> int:
        """Updates rows and broadcasts the keys they had before and have after."""
        fields = key_fields(self.model)
        if not fields or self.query.is_sliced or self.query.combinator:
            # Nothing to read, or an update Django refuses with its own error.
            return super().update(**kwargs)
        self._for_write = True
        publisher.prepare(self.db)
        meta = self.model._meta
        moves = _attnames(meta, kwargs) & set(fields)
        before = self._key_rows(fields)
        with transaction.atomic(using=self.db, savepoint=False):
            count = models.QuerySet.update(self, **kwargs)
            # Read back rather than guess: values may be expressions, strings, naive times.
            after = self._rows_by_pk(_pks(before, meta), fields) if moves and before else []
            schedule_objects(self.model, _rows(before + after, fields), self.db)
        return count

    def delete(self) -> tuple[int, dict[str, int]]:
        """Deletes rows and broadcasts their keys; rows are not loaded one by one."""
        fields = key_fields(self.model)
        query = self.query
        refused = query.is_sliced or query.distinct_fields or query.combinator
        if not fields or refused or getattr(self, "_fields", None) is not None:
            # Nothing to read, or a delete Django refuses with its own error.
            return super().delete()
        # As QuerySet.delete() does: find and delete on the database written to.
        chained = self._chain()  # type: ignore[attr-defined]
        chained._for_write = True
        publisher.prepare(chained.db)
        chained.query.select_for_update = False
        chained.query.select_related = False
        chained.query.clear_ordering(force=True)
        using = chained.db
        before = chained._key_rows(fields)
        with transaction.atomic(using=using, savepoint=False):
            collector = KeysReadCollector(
                using=using, origin=self, keys_read=self.model, others=others_listen_to_deletes
            )
            collector.collect(chained)
            deleted = collector.delete()
            schedule_objects(self.model, _rows(before, fields), using)
        self._result_cache = None
        return deleted

    def bulk_create(
        self,
        objs: Iterable[Any],
        batch_size: int | None = None,
        ignore_conflicts: bool = False,
        update_conflicts: bool = False,
        update_fields: Collection[str] | None = None,
        unique_fields: Collection[str] | None = None,
    ) -> list[Any]:
        """Creates objects in bulk and broadcasts their keys (and upserted rows' old keys)."""
        objs = list(objs)
        fields = key_fields(self.model)
        create = partial(
            super().bulk_create,
            batch_size=batch_size,
            ignore_conflicts=ignore_conflicts,
            update_conflicts=update_conflicts,
            update_fields=update_fields,
            unique_fields=unique_fields,
        )
        if not fields or not objs:
            return create(objs)
        self._for_write = True
        publisher.prepare(self.db)
        match = self._match_fields(unique_fields) if update_conflicts else []
        with transaction.atomic(using=self.db, savepoint=False):
            before = self._rows_matching(objs, match, fields) if match else []
            created = create(objs)
            after = self._rows_matching(objs, match, fields) if match else []
            schedule_objects(self.model, [*created, *_rows(before + after, fields)], self.db)
        return created

    def bulk_update(
        self, objs: Iterable[Any], fields: Iterable[str], batch_size: int | None = None
    ) -> int:
        """Updates objects in bulk and broadcasts their rows' old and new keys."""
        objs, fields = list(objs), list(fields)
        watched = key_fields(self.model)
        if not watched or not objs:
            return super().bulk_update(objs, fields, batch_size)
        self._for_write = True
        publisher.prepare(self.db)
        pks = [obj.pk for obj in objs]
        with transaction.atomic(using=self.db, savepoint=False):
            # The rows' keys, not the objects': an object may hold a stale position.
            before = self._rows_by_pk(pks, watched)
            # Django's bulk_update() calls update(), which must not read the keys again.
            count = models.QuerySet.bulk_update(self._plain(), objs, fields, batch_size)
            moves = _attnames(self.model._meta, fields) & set(watched)
            after = self._rows_by_pk(pks, watched) if moves else []
            schedule_objects(self.model, _rows(before + after, watched), self.db)
        return count

    def _plain(self) -> Any:
        """Returns this QuerySet as a plain one, whose writes streaming does not watch."""
        state: Any = self
        plain: Any = models.QuerySet(self.model, self.query.chain(), state._db, state._hints)
        plain._for_write = self._for_write
        return plain

    def _key_rows(self, fields: Sequence[str]) -> list[Row]:
        """
        Returns the pk and key fields of the matching rows, without locking them. A shape
        a plain SELECT refuses reads nothing (the relay delivers): it never fails the write.
        """
        rows = self.order_by().values(self.model._meta.pk.attname, *fields)
        rows.query.select_for_update = False
        connection = connections[self.db]
        # PostgreSQL refuses every later query of a transaction whose query failed: inside
        # the caller's transaction the read runs in a savepoint. Outside one, or on other
        # databases, a failed read leaves nothing to undo.
        aborts = connection.vendor == "postgresql" and connection.in_atomic_block
        try:
            with transaction.atomic(using=self.db) if aborts else nullcontext():
                return list(rows)
        except DatabaseError:
            logger.warning(
                "streaming: cannot read the keys of a bulk write to %s; the relay delivers it",
                self.model._meta.label,
                exc_info=True,
            )
            return []

    def _rows_by_pk(self, pks: Sequence[Any], fields: Sequence[str]) -> list[Row]:
        """Returns the rows with these pks (a query per max_query_params of them)."""
        return self._read([models.Q(pk__in=chunk) for chunk in self._chunks(pks, 1)], fields)

    def _rows_matching(self, objs: list[Any], match: list[str], fields: Sequence[str]) -> list[Row]:
        """Returns the rows whose `match` fields equal an object's (its upsert target)."""
        conditions = [
            reduce(or_, (models.Q(**{f: getattr(obj, f) for f in match}) for obj in chunk))
            for chunk in self._chunks(objs, len(match))
        ]
        return self._read(conditions, fields)

    def _read(self, conditions: list[models.Q], fields: Sequence[str]) -> list[Row]:
        manager = self.model._base_manager.db_manager(self.db)
        rows: list[Row] = []
        for condition in conditions:
            query = manager.filter(condition).order_by()
            rows += query.values(self.model._meta.pk.attname, *fields)
        return rows

    def _chunks(self, items: Sequence[Any], params_each: int) -> list[Sequence[Any]]:
        """Splits `items` so a query holds at most max_query_params parameters (SQLite)."""
        limit = connections[self.db].features.max_query_params
        size = max(limit // params_each, 1) if limit else max(len(items), 1)
        return [items[i : i + size] for i in range(0, len(items), size)]

    def _match_fields(self, unique_fields: Collection[str] | None) -> list[str]:
        """Returns the attnames an upsert matches existing rows on."""
        if not unique_fields:
            return []
        meta = self.model._meta
        return [meta.pk.attname if f == "pk" else _attname(meta, f) for f in unique_fields]


def _attname(meta: Any, name: str) -> str:
    return str(meta.get_field(name).attname)


def _attnames(meta: Any, names: Iterable[str]) -> set[str]:
    """Returns the attnames of the named fields; Django itself reports unknown names."""
    out = set()
    for name in names:
        try:
            out.add(_attname(meta, name))
        except FieldDoesNotExist:
            continue
    return out


def _pks(rows: list[Row], meta: Any) -> list[Any]:
    return [row[meta.pk.attname] for row in rows]


def _rows(rows: list[Row], fields: Sequence[str]) -> list[SimpleNamespace]:
    """Returns rows as objects with the key fields as attributes, for Source.keys."""
    return [SimpleNamespace(**{f: row[f] for f in fields}) for row in rows]


StreamingManager = models.Manager.from_queryset(StreamingQuerySet)
