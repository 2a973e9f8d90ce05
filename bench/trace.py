"""
Splits the deliveries of a `BENCH_VARIANT=trace` run (bench/analysis.py) into their steps:
commit, PUBLISH sent, PUBLISH acknowledged, message parsed off Redis in the server, frame
written to the socket. Best read at N = 1, where one write's steps never overlap the next's.

`python -m bench.trace [LOG]` prints each step's p50 and mean in ms.
"""

from __future__ import annotations

import itertools
import statistics
import sys

from bench.analysis import TRACE_LOG

STEPS = ("commit", "publish", "acked", "parsed", "sent")


def chains(lines: list[str]) -> list[dict[str, float]]:
    """Returns each complete commit-to-socket chain's stamps, in time order."""
    events = sorted((float(t), step) for step, t in (line.split() for line in lines))
    found: list[dict[str, float]] = []
    current: dict[str, float] | None = None
    for t, step in events:
        if step == "commit":
            current = {"commit": t}
        elif current is not None and step not in current:
            current[step] = t
            if step == STEPS[-1]:
                if all(s in current for s in STEPS):
                    found.append(current)
                current = None
    # The first is the writer's warm-up write.
    return found[1:]


def main() -> None:
    """Prints the split of the log named on the command line (or the default one)."""
    path = sys.argv[1] if len(sys.argv) > 1 else TRACE_LOG
    with open(path) as log:
        found = chains(log.readlines())
    print(f"{len(found)} deliveries")
    for before, after in [*itertools.pairwise(STEPS), ("commit", "sent")]:
        spans = [(c[after] - c[before]) * 1e3 for c in found]
        p50, mean = statistics.median(spans), statistics.mean(spans)
        print(f"{before:>8} -> {after:<8} p50 {p50:6.3f} ms  mean {mean:6.3f} ms")


if __name__ == "__main__":
    main()
