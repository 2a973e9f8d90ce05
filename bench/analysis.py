"""
Analysis-only instruments for a server under benchmark, switched on by BENCH_VARIANT in
bench/settings.py (docs/benchmarks.md, "N = 5,000"): never part of `make bench`.

- `gc-log`: appends each garbage collection over 10 ms to /tmp/bench-gc.log.
- `mem-sites`: once 1,900+ WebSocket protocols are open and their count holds, writes the
  heap's growth per socket since startup, by allocating line, to /tmp/bench-mem-sites.log.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
import tracemalloc
from typing import Any

GC_LOG = "/tmp/bench-gc.log"
MEM_LOG = "/tmp/bench-mem-sites.log"


def log_gc() -> None:
    """Logs every collection that takes over 10 ms: its generation, duration and yield."""
    started = [0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        took = time.perf_counter() - started[0]
        if took > 0.01:
            with open(GC_LOG, "a") as log:
                log.write(
                    f"{time.time():.2f} gen{info['generation']} {took * 1000:.0f} ms "
                    f"collected {info['collected']}\n"
                )

    gc.callbacks.append(callback)


def dump_memory_sites(protocols: int = 1900) -> None:
    """Traces allocations from now on; a thread writes the per-socket growth (see above)."""
    tracemalloc.start(1)

    def watch() -> None:
        time.sleep(8)
        base, last = tracemalloc.take_snapshot(), -1
        while True:
            time.sleep(3)
            count = sum(1 for o in gc.get_objects() if type(o).__name__ == "WebSocketProtocol")
            if count >= protocols and count == last:
                break
            last = count
        stats = tracemalloc.take_snapshot().compare_to(base, "lineno")
        with open(MEM_LOG, "w") as log:
            log.write(f"sockets {count}, {sum(s.size_diff for s in stats) / count:.0f} B each\n")
            for stat in stats[:45]:
                log.write(
                    f"{stat.size_diff / count:8.0f} B {stat.count_diff / count:6.2f} objects "
                    f"per socket  {stat.traceback}\n"
                )
        print(f"bench.analysis: wrote {MEM_LOG}", file=sys.stderr)

    threading.Thread(target=watch, daemon=True).start()
