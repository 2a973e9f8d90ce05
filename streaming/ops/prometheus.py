"""
/metrics/: this process's streaming counters in Prometheus text format, for staff users
(session, or a staff user's DRF token: `Authorization: Token <key>`).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.http import HttpResponse
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.permissions import IsAdminUser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from streaming.ops.stats import stats
from streaming.registry import all_streams

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (counter in Stats.snapshot(), metric name, type, help)
METRICS = [
    (
        "broadcasts",
        "streaming_broadcasts_total",
        "counter",
        "Messages this process's publisher sent through the channel layer.",
    ),
    (
        "subscribers",
        "streaming_subscribers",
        "gauge",
        "Subscriptions held by sockets connected to this process.",
    ),
    (
        "conflated",
        "streaming_conflated_total",
        "counter",
        "Changes merged into a broadcast of the same key that was still waiting to be sent.",
    ),
    (
        "dropped",
        "streaming_dropped_total",
        "counter",
        "Updates this process could not deliver to a socket (it was closing).",
    ),
    (
        "send_failures",
        "streaming_send_failures_total",
        "counter",
        "Broadcasts that failed to reach the channel layer (each is retried).",
    ),
    (
        "relay_changes",
        "streaming_relay_changes_total",
        "counter",
        "Changes this server's relay read from the database's change log (stream \"*\").",
    ),
    (
        "relay_failures",
        "streaming_relay_failures_total",
        "counter",
        "Failed reads of the change log by this server's relay (each is retried).",
    ),
    (
        "repair_failures",
        "streaming_repair_failures_total",
        "counter",
        "Keys whose re-read from the database failed on this server (retried with backoff).",
    ),
    (
        "fast_path_sockets",
        "streaming_fast_path_sockets_total",
        "counter",
        "Sockets served by daphne's fast path (frames written to the transport, flow-controlled).",
    ),
    (
        "fast_path_misses",
        "streaming_fast_path_misses_total",
        "counter",
        "Sockets under daphne the fast path could not attach to: served without backpressure.",
    ),
    (
        "last_latency_seconds",
        "streaming_last_commit_to_send_seconds",
        "gauge",
        "Seconds from commit to group_send of the latest broadcast batch.",
    ),
]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    # Counters stay exact integers; `:g` would round 1234567 to 1.23457e+06.
    return str(value) if isinstance(value, int) else repr(float(value))


def render_metrics() -> str:
    """Returns every counter as Prometheus text, one sample per stream (0 when unseen)."""
    snapshot = stats.snapshot()
    lines = []
    for counter, name, kind, help_text in METRICS:
        values = snapshot[counter]
        streams = sorted({s.name for s in all_streams()} | set(values))
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines += [f'{name}{{stream="{_label(s)}"}} {_number(values.get(s, 0))}' for s in streams]
    return "\n".join(lines) + "\n"


class IgnoreAccept(BaseContentNegotiation):
    """Picks the first renderer whatever Accept says: scrapers ask for several text formats."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        """Returns the first renderer and its media type."""
        first = next(iter(renderers))
        return first, first.media_type or ""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        """Returns no parser: the endpoint reads no body."""
        return None


class MetricsView(APIView):
    """Serves render_metrics() to staff users; 401 without credentials, 403 for non-staff."""

    permission_classes = [IsAdminUser]
    # Errors (401, 403) come back as JSON; the counters themselves are plain text.
    renderer_classes = [JSONRenderer]
    content_negotiation_class = IgnoreAccept
    # Not part of the REST API's OpenAPI schema.
    schema = None

    def get_authenticate_header(self, request: Request) -> str:
        """Returns the first WWW-Authenticate challenge offered, so anonymous calls get 401."""
        for authenticator in self.get_authenticators():
            header = authenticator.authenticate_header(request)
            if header:
                return header
        return ""

    def get(self, request: Request) -> HttpResponse:
        """Returns the counters as Prometheus text."""
        return HttpResponse(render_metrics(), content_type=CONTENT_TYPE)
