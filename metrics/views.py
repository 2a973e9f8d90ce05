"""Pages: the dashboard of all visible series, and one series' week."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render

from metrics.selectors import series_visible_to, series_week
from metrics.streams import WEEK_STREAM
from metrics.weeks import IsoWeek


def dashboard(request: HttpRequest) -> HttpResponse:
    """Renders this week's chart of every series the visitor may see."""
    week = IsoWeek.current()
    cards = [
        {"series": s, "payload": series_week(series=s, week=week)}
        for s in series_visible_to(user=request.user)
    ]
    return render(
        request, "metrics/dashboard.html", {"cards": cards, "week": week, "stream": WEEK_STREAM}
    )


def series_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """Renders one series' week (?week=2026-W48, default this week) with navigation."""
    series = get_object_or_404(series_visible_to(user=request.user), slug=slug)
    current = IsoWeek.current()
    try:
        week = IsoWeek.parse(request.GET["week"]) if "week" in request.GET else current
    except ValueError as exc:
        return HttpResponseBadRequest(f"Invalid week: {exc}")
    context = {
        "series": series,
        "payload": series_week(series=series, week=week),
        "week": week,
        "previous": week.shift(-1),
        "next": week.shift(1),
        "current": current,
        "stream": WEEK_STREAM,
    }
    return render(request, "metrics/series_detail.html", context)
