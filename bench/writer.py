"""
The benchmark's writer: write i stores value BASE + i for today, paced or back to back.

`python -m bench.writer django APP SERIES COUNT RATE BASE` saves Metric rows with the ORM
(DJANGO_SETTINGS_MODULE picks the target); `python -m bench.writer raw REDIS_URL CHANNEL
COUNT RATE BASE` PUBLISHes instead; `python -m bench.writer setup APP SERIES` creates a
series aggregated by max. For bench/stall.py: `setup-board SLUG NOTES` and
`board SLUG - COUNT RATE BASE` (rewrites the board's first note). RATE 0 means back to
back. Prints one JSON line of records [value, commit time, post-commit seconds, whole
write seconds].

Before the timed writes, a Django writer makes one untimed write to another series.
Commit time: the first on_commit callback, registered before the save, stamps it; the
post-commit cost is the rest of the atomic block's exit (the other on_commit callbacks,
i.e. what the broadcast costs the writer). For raw, the commit is the moment before PUBLISH
and the post-commit cost is the PUBLISH call.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Write = Callable[[int], tuple[float, float]]


def paced(write: Write, count: int, rate: float, base: int) -> list[list[float]]:
    """Calls write(BASE + i) for i in 1..count at `rate` per second; returns the records."""
    records = []
    start = time.time()
    for i in range(1, count + 1):
        if rate > 0:
            delay = start + (i - 1) / rate - time.time()
            if delay > 0:
                time.sleep(delay)
        began = time.time()
        committed, post_commit = write(base + i)
        records.append([base + i, committed, post_commit, time.time() - began])
    return records


def django_writer(app: str, slug: str) -> Write:
    """Returns a write function saving one Metric per call in its own transaction."""
    import django

    django.setup()
    from django.apps import apps
    from django.db import transaction
    from django.utils import timezone

    metric_model = apps.get_model(app, "Metric")
    series_model = apps.get_model(app, "Series")
    series = series_model.objects.get(slug=slug)
    # One untimed write elsewhere first: imports, threads and connections a long-running
    # writer pays once are not part of the measure.
    warm_up, _ = series_model.objects.get_or_create(
        slug="bench-warm-up", defaults={"name": "warm-up", "aggregation": "max"}
    )
    metric_model.objects.create(series=warm_up, timestamp=timezone.now(), value=0)
    time.sleep(0.5)

    def write(value: int) -> tuple[float, float]:
        marks: list[float] = []
        with transaction.atomic():
            transaction.on_commit(lambda: marks.append(time.time()))
            metric_model.objects.create(series=series, timestamp=timezone.now(), value=value)
        return marks[0], time.time() - marks[0]

    return write


def week_message(value: int) -> str:
    """Returns an update frame shaped like this project's, reflecting `value` today."""
    today = datetime.now(UTC).date()
    monday = today - timedelta(days=today.weekday())
    values: list[float | None] = [None] * 7
    values[today.weekday()] = float(value)
    iso_year, iso_week, _ = today.isocalendar()
    payload = {
        "series": "bench",
        "week": f"{iso_year}-W{iso_week:02d}",
        "labels": [(monday + timedelta(days=d)).isoformat() for d in range(7)],
        "values": values,
        "unit": "",
        "aggregation": "max",
    }
    message = {"action": "update", "stream": "metrics.week", "key": "1:" + payload["week"]}
    return json.dumps({**message, "version": value, "payload": payload})


def raw_writer(redis_url: str, channel: str) -> Write:
    """Returns a write function PUBLISHing one frame per call on one connection."""
    import redis

    from bench.analysis import raw_stamp

    client = redis.Redis.from_url(redis_url)
    client.ping()
    stamp = raw_stamp()

    def write(value: int) -> tuple[float, float]:
        text = week_message(value)
        committed = time.time()
        if stamp is not None:
            stamp("commit")
            stamp("publish")
        client.publish(channel, text)
        if stamp is not None:
            stamp("acked")
        return committed, time.time() - committed

    return write


def board_writer(slug: str) -> Write:
    """Returns a write function rewriting the board's first note: its text leads with value."""
    import django

    django.setup()
    from django.db import transaction

    from tests.exampleapp.models import Note

    note = Note.objects.filter(board__slug=slug).order_by("position", "pk").first()
    assert note is not None

    def write(value: int) -> tuple[float, float]:
        marks: list[float] = []
        with transaction.atomic():
            transaction.on_commit(lambda: marks.append(time.time()))
            note.text = f"{value:06d}" + "y" * (len(note.text) - 6)
            note.save(update_fields=["text"])
        return marks[0], time.time() - marks[0]

    return write


def setup_board(slug: str, notes: int) -> None:
    """Creates the board `slug` with `notes` notes of 500 characters."""
    import django

    django.setup()
    from tests.exampleapp.models import Board, Note

    board = Board.objects.create(slug=slug, title=slug)
    Note.objects.bulk_create(Note(board=board, text="0" * 500) for _ in range(notes))


def setup(app: str, slug: str) -> None:
    """Creates the series `slug` aggregated by max."""
    import django

    django.setup()
    from django.apps import apps

    apps.get_model(app, "Series").objects.create(slug=slug, name=slug, aggregation="max")


def main(argv: list[str]) -> None:
    """Parses the command line (see the module docstring) and runs it."""
    kind = argv[0]
    if kind == "setup":
        setup(argv[1], argv[2])
        return
    if kind == "setup-board":
        setup_board(argv[1], int(argv[2]))
        return
    if kind == "board":
        write = board_writer(argv[1])
    else:
        write = (django_writer if kind == "django" else raw_writer)(argv[1], argv[2])
    count, rate, base = int(argv[3]), float(argv[4]), int(argv[5])
    records = paced(write, count, rate, base)
    print(json.dumps(records), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
