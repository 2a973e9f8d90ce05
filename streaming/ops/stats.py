"""In-process counters for broadcasts, subscribers and failures (exported at /metrics/)."""

from __future__ import annotations

import threading
from collections import Counter


class Stats:
    """Thread-safe counters; each process keeps its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.broadcasts: Counter[str] = Counter()
        self.conflated: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.send_failures: Counter[str] = Counter()
        self.subscribers: Counter[str] = Counter()
        # The relay: changes read from the database's log, and failed reads ("*": no stream).
        self.relay_changes: Counter[str] = Counter()
        self.relay_failures: Counter[str] = Counter()
        # Sockets the daphne fast path attached to, and those it could not (stream "*").
        self.fast_path_sockets: Counter[str] = Counter()
        self.fast_path_misses: Counter[str] = Counter()
        # Keys whose re-read from the database failed (retried with backoff).
        self.repair_failures: Counter[str] = Counter()
        self.last_latency_seconds: dict[str, float] = {}

    def add(self, counter: str, stream: str, amount: int = 1) -> None:
        """Adds `amount` to one of the counters for `stream`."""
        with self._lock:
            getattr(self, counter)[stream] += amount

    def latency(self, stream: str, seconds: float) -> None:
        """Records the last commit-to-send latency of `stream`."""
        with self._lock:
            self.last_latency_seconds[stream] = seconds

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Returns a consistent copy of every counter, by counter name then stream."""
        with self._lock:
            return {
                "broadcasts": dict(self.broadcasts),
                "conflated": dict(self.conflated),
                "dropped": dict(self.dropped),
                "send_failures": dict(self.send_failures),
                "subscribers": dict(self.subscribers),
                "relay_changes": dict(self.relay_changes),
                "relay_failures": dict(self.relay_failures),
                "repair_failures": dict(self.repair_failures),
                "fast_path_misses": dict(self.fast_path_misses),
                "fast_path_sockets": dict(self.fast_path_sockets),
                "last_latency_seconds": dict(self.last_latency_seconds),
            }


stats = Stats()
