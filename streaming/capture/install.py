"""Installs the capture triggers after every `migrate`, and checks that they are in place."""

from __future__ import annotations

import logging
from typing import Any

from django.core import checks
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, router

from streaming.capture import triggers
from streaming.models import Change

logger = logging.getLogger("streaming.capture")


def after_migrate(using: str = DEFAULT_DB_ALIAS, verbosity: int = 1, **kwargs: Any) -> None:
    """post_migrate receiver: (re)installs the triggers of every observed model on `using`."""
    if not router.allow_migrate_model(using, Change):
        return
    models = [m for m in triggers.observed_models() if router.allow_migrate_model(using, m)]
    changed = triggers.install(connections[using], models)
    if changed and verbosity >= 1:
        logger.info("streaming: capture triggers on %s: %s", using, " ".join(changed))


@checks.register(checks.Tags.database)
def check_triggers(databases: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Reports observed models whose capture triggers are missing or out of date."""
    errors: list[checks.CheckMessage] = []
    for alias in databases or ():
        connection = connections[alias]
        if not triggers.supported(connection):
            errors.append(
                checks.Warning(
                    f"streaming cannot capture writes on the {connection.vendor} database "
                    f"{alias!r}: only signals broadcast its changes.",
                    hint="Use PostgreSQL or SQLite for every change to reach every page.",
                    id="streaming.W101",
                )
            )
            continue
        if not router.allow_migrate_model(alias, Change):
            continue
        try:
            tables = set(connection.introspection.table_names())
        except DatabaseError:
            continue
        for model in triggers.observed_models():
            # Tables not migrated yet get their triggers from the migrate that makes them.
            if Change._meta.db_table not in tables or model._meta.db_table not in tables:
                continue
            if not router.allow_migrate_model(alias, model):
                continue
            if triggers.missing(connection, model):
                errors.append(
                    checks.Warning(
                        f"{model._meta.label}'s capture triggers are missing or out of date "
                        f"on {alias!r}: writes outside Django's signals are not broadcast.",
                        hint="Run `manage.py migrate`: streaming installs them after every "
                        "migrate.",
                        obj=model,
                        id="streaming.W102",
                    )
                )
    return errors
