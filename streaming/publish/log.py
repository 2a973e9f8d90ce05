"""The publisher's log: one INFO line per stream per sent batch, with structured fields."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("streaming.publish.publisher")


def log_sent(
    stream: str, outgoing: list[tuple[str, dict[str, Any]]], duration: float, latency: float
) -> None:
    """Logs one INFO line per stream per batch, as key=value text and as `extra` fields."""
    updates = [m for _, m in outgoing if m["type"] == "stream.update"]
    fields = {
        "stream": stream,
        "keys": [m["key"] for m in updates],
        "versions": [m["version"] for m in updates],
        "refreshes": len(outgoing) - len(updates),
        "duration_ms": round(duration * 1000, 2),
        "latency_ms": round(latency * 1000, 2),
    }
    shown = ",".join(f"{m['key']}@{m['version']}" for m in updates[:5])
    if len(updates) > 5:
        shown += f",+{len(updates) - 5}"
    logger.info(
        "streaming: sent stream=%s updates=%s refreshes=%d duration_ms=%.2f latency_ms=%.2f",
        stream,
        shown or "-",
        fields["refreshes"],
        fields["duration_ms"],
        fields["latency_ms"],
        extra=fields,
    )
