"""
The admin's "Live streams" page: every registered stream with this process's subscriber
count and broadcast counters. Counts are per process: each server shows its own sockets.
"""

from __future__ import annotations

import os
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from streaming.models import LiveStream
from streaming.ops.stats import stats
from streaming.registry import all_streams


def stream_rows() -> list[dict[str, Any]]:
    """Returns one row per registered stream, with this process's counters."""
    snapshot = stats.snapshot()
    rows = []
    for stream in sorted(all_streams(), key=lambda s: s.name):
        latency = snapshot["last_latency_seconds"].get(stream.name)
        rows.append(
            {
                "name": stream.name,
                "models": ", ".join(source.model._meta.label for source in stream.sources),
                "subscribers": snapshot["subscribers"].get(stream.name, 0),
                "broadcasts": snapshot["broadcasts"].get(stream.name, 0),
                "conflated": snapshot["conflated"].get(stream.name, 0),
                "dropped": snapshot["dropped"].get(stream.name, 0),
                "send_failures": snapshot["send_failures"].get(stream.name, 0),
                "latency_ms": None if latency is None else round(latency * 1000, 1),
            }
        )
    return rows


@admin.register(LiveStream)
class LiveStreamAdmin(admin.ModelAdmin):
    """A read-only page instead of a change list; needs streaming.view_livestream."""

    def get_urls(self) -> list[URLPattern]:
        """Returns the page's only URL, named like a change list so the index links to it."""
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view(self.changelist_view)
        return [path("", view, name="{}_{}_changelist".format(*info))]

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Returns False: streams are registered in code."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Returns False: the page is read-only."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Returns False: the page is read-only."""
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Renders the streams table, or 403 without the view permission."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Live streams",
            "opts": self.opts,
            "rows": stream_rows(),
            "pid": os.getpid(),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/streaming/live_streams.html", context)
