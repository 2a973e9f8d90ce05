"""
The `metrics.week` stream: a key is one series' ISO week, its payload the week's data.

Keys name the series by primary key ("12:2026-W48"), so a slug change keeps them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import streaming
from metrics.models import Metric, Series
from metrics.selectors import (
    can_view_series_by_pk,
    series_pk_by_slug,
    series_visible_to,
    series_week_by_pk,
)
from metrics.weeks import IsoWeek

WEEK_STREAM = "metrics.week"
_SLUG = re.compile(r"[-a-zA-Z0-9_]+")


def week_key(series_id: int, week: IsoWeek) -> str:
    """Returns the stream key of a series' week."""
    return f"{series_id}:{week}"


def _parse_key(key: str) -> tuple[int, IsoWeek]:
    series_id, week = key.split(":", 1)
    return int(series_id), IsoWeek.parse(week)


def metric_keys(metric: Any) -> set[str]:
    """Returns the key a metric (or a row with series_id and timestamp) belongs to."""
    return {week_key(metric.series_id, IsoWeek.of(metric.timestamp))}


def series_keys(series: Any) -> list[streaming.AllKeys]:
    """Returns all of a series' keys: its unit, aggregation or existence changed."""
    return [streaming.AllKeys(prefix=f"{series.id}:")]


def params_key(params: Mapping[str, Any]) -> str:
    """Returns the key for subscribe params {"series": slug, "week": "2026-W48"?}."""
    unknown = sorted(set(params) - {"series", "week"})
    if unknown:
        raise streaming.InvalidParams(f"Unexpected params: {', '.join(unknown)}.")
    slug, week = params.get("series"), params.get("week")
    # Only what Series.slug allows reaches the database (PostgreSQL refuses NUL bytes).
    if not isinstance(slug, str) or len(slug) > 50 or not _SLUG.fullmatch(slug):
        raise streaming.InvalidParams("series must be a series slug.")
    if week is None:
        parsed = IsoWeek.current()
    else:
        try:
            parsed = IsoWeek.parse(week)
        except ValueError as exc:
            raise streaming.InvalidParams(f"week: {exc}") from exc
    series_id = series_pk_by_slug(slug=slug)
    if series_id is None:
        raise streaming.StreamNotFound(f"No series {slug!r}.")
    return week_key(series_id, parsed)


def payload(key: str, using: str | None) -> dict[str, Any] | None:
    """Returns the key's week payload, or None once its series is deleted."""
    series_id, week = _parse_key(key)
    return series_week_by_pk(pk=series_id, week=week, using=using)


def permission(user: Any, key: str) -> bool:
    """Returns whether `user` may subscribe to `key`."""
    return can_view_series_by_pk(user=user, pk=_parse_key(key)[0])


def batch_permission(user: Any, keys: Sequence[str]) -> set[str]:
    """
    Returns the keys of `keys` `user` may subscribe to, reading their series in one query:
    permission()'s rule (series_visible_to is can_view_series over a queryset).
    """
    by_series: dict[int, list[str]] = {}
    for key in keys:
        # Only the series id matters here: parsing each week cost more than the query.
        by_series.setdefault(int(key.split(":", 1)[0]), []).append(key)
    visible = series_visible_to(user=user).filter(pk__in=list(by_series)).order_by()
    return {key for pk in visible.values_list("pk", flat=True) for key in by_series[pk]}


week_stream = streaming.Stream(
    name=WEEK_STREAM,
    sources=(
        streaming.Source(Metric, keys=metric_keys, fields=("series_id", "timestamp")),
        streaming.Source(Series, keys=series_keys, fields=("id",)),
    ),
    params=params_key,
    payload=payload,
    permission=permission,
    batch_permission=batch_permission,
)


def register() -> None:
    """Registers the metrics streams; called from MetricsConfig.ready()."""
    streaming.register(week_stream)
