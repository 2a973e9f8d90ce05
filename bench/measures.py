"""Turns what the writer and the clients recorded into the benchmark's figures."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any


def percentile(values: list[float], share: float) -> float | None:
    """Returns the nearest-rank percentile of sorted `values` (None when empty)."""
    if not values:
        return None
    rank = min(len(values) - 1, max(0, round(share * len(values) + 0.5) - 1))
    return values[rank]


@dataclass
class Phase:
    """One writer phase (paced or burst) as every client saw it."""

    latencies: list[float] = field(default_factory=list)
    pairs: int = 0
    lost: int = 0
    deliveries: int = 0
    span: float = 0.0
    last_reflected: float | None = None
    lag: float | None = None
    waited: float = 0.0
    cpu_seconds: float = 0.0
    post_commit: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Returns the phase's figures (seconds, shares, counts)."""
        lat = sorted(self.latencies)
        post = sorted(self.post_commit)
        return {
            "pairs": self.pairs,
            "p50": percentile(lat, 0.50),
            "p99": percentile(lat, 0.99),
            "max": lat[-1] if lat else None,
            "lost_share": self.lost / self.pairs if self.pairs else None,
            "deliveries": self.deliveries,
            "deliveries_per_s": self.deliveries / self.span if self.span > 0 else None,
            "cpu_per_delivery": self.cpu_seconds / self.deliveries if self.deliveries else None,
            "post_commit_p50": percentile(post, 0.50),
            "post_commit_p99": percentile(post, 0.99),
            "total": self.last_reflected,
            "lag": self.lag,
            "waited": self.waited,
        }


def phase(
    records: list[list[float]],
    traces: list[list[tuple[float, float]]],
    received: list[float],
    cutoff: float,
    cpu_seconds: float,
) -> Phase:
    """
    Returns the figures of one phase: records are the writer's [value, commit time,
    post-commit s, write s]; a trace is a client's (time, highest value so far) steps.
    Anything seen after `cutoff` (the end of the bounded wait) counts as never seen.
    """
    out = Phase(cpu_seconds=cpu_seconds, post_commit=[r[2] for r in records])
    if not records:
        return out
    first_commit = min(r[1] for r in records)
    last_value = max(r[0] for r in records)
    last_commit = max(r[1] for r in records)
    finished: list[float] = []
    for trace in traces:
        trace = [step for step in trace if step[0] <= cutoff]
        times = [t for t, _ in trace]
        values = [v for _, v in trace]
        for value, committed, _, _ in records:
            out.pairs += 1
            k = bisect.bisect_left(values, value)
            if k == len(values):
                out.lost += 1
                continue
            out.latencies.append(times[k] - committed)
            if value == last_value:
                finished.append(times[k])
    out.waited = cutoff - first_commit
    in_phase = [t for t in received if first_commit <= t <= cutoff]
    out.deliveries = len(in_phase)
    out.span = (max(in_phase) - first_commit) if in_phase else 0.0
    if traces and len(finished) == len(traces):
        # Burst: from the first write's commit until every client holds the last one.
        out.last_reflected = max(finished) - first_commit
        # The part after the writer's own last commit: the broadcast alone.
        out.lag = max(finished) - last_commit
    return out
