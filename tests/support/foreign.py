"""Writes as a program that is not Django would: the database's own driver and connection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def run_sql(statements: Sequence[tuple[str, list[Any]]], alias: str = "default") -> list[int]:
    """
    Runs `statements` (SQL with %s placeholders) in one transaction through sqlite3 or
    psycopg, on the database Django's `alias` names; returns each statement's row count.
    Datetimes are passed as SQLite's text form there, as other programs write them.
    """
    from django.db import connections

    connection = connections[alias]
    settings = connection.settings_dict
    counts = []
    if connection.vendor == "sqlite":
        import sqlite3

        db = sqlite3.connect(settings["NAME"], timeout=30)
        for sql, params in statements:
            values = [p.strftime("%Y-%m-%d %H:%M:%S") if hasattr(p, "hour") else p for p in params]
            counts.append(db.execute(sql.replace("%s", "?"), values).rowcount)
        db.commit()
        db.close()
        return counts
    import psycopg

    with psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        dbname=settings["NAME"],
    ) as db:
        counts = [db.execute(sql, params).rowcount for sql, params in statements]
    return counts
