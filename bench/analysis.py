"""
Analysis-only instruments for a server under benchmark, switched on by BENCH_VARIANT in
bench/settings.py (docs/benchmarks.md, "N = 5,000"): never part of `make bench`.

- `gc-log`: appends each garbage collection over 10 ms to /tmp/bench-gc.log.
- `mem-sites`: once 1,900+ WebSocket protocols are open and their count holds, writes the
  heap's growth per socket since startup, by allocating line, to /tmp/bench-mem-sites.log.
- `trace`: in the writer and the server, appends a wall-clock stamp at each step of a
  broadcast (commit, PUBLISH sent and acknowledged, parsed off Redis, written to a socket)
  to /tmp/bench-trace.log; bench/trace.py splits a run's deliveries by step.
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


TRACE_LOG = "/tmp/bench-trace.log"


def _tracer() -> Any:
    """Returns a function appending `stage time` to TRACE_LOG; stamps `parsed` in redis-py."""
    from redis.asyncio.client import PubSub

    log = open(TRACE_LOG, "a", buffering=1)  # noqa: SIM115

    def stamp(stage: str) -> None:
        log.write(f"{stage} {time.time():.6f}\n")

    handle_message = PubSub.handle_message

    async def handled(self: Any, response: Any, *args: Any) -> Any:
        stamp("parsed")
        return await handle_message(self, response, *args)

    PubSub.handle_message = handled  # type: ignore[method-assign]
    return stamp


def trace_stages() -> None:
    """Appends `stage time` lines to TRACE_LOG at each step of a broadcast, in every process."""
    from django.db.backends.base.base import BaseDatabaseWrapper

    from streaming.publish import redis_pubsub
    from streaming.serve.daphne.wire import Wire

    stamp = _tracer()
    run_hooks = BaseDatabaseWrapper.run_and_clear_commit_hooks

    def committed(self: Any) -> None:
        stamp("commit")
        run_hooks(self)

    group_send = redis_pubsub.BlockingGroupSend.group_send

    def published(self: Any, group: str, message: Any) -> None:
        stamp("publish")
        group_send(self, group, message)
        stamp("acked")

    write = Wire._write

    def written(self: Any, *args: Any) -> None:
        write(self, *args)
        stamp("sent")

    BaseDatabaseWrapper.run_and_clear_commit_hooks = committed  # type: ignore[method-assign]
    redis_pubsub.BlockingGroupSend.group_send = published  # type: ignore[method-assign]
    Wire._write = written  # type: ignore[method-assign]


SURVIVORS_LOG = "/tmp/bench-gc-survivors.log"


def log_gc_survivors(sockets: int = 4900) -> None:
    """
    Once `sockets` WebSocket protocols are open, writes every 3 s the types of the objects in
    the collector's middle generation, and what the oldest one gained since the last look.
    """
    from collections import Counter

    def kinds(generation: int) -> Counter[str]:
        return Counter(
            f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects(generation)
        )

    def watch() -> None:
        from daphne.ws_protocol import WebSocketProtocol

        while sum(isinstance(o, WebSocketProtocol) for o in gc.get_objects()) < sockets:
            time.sleep(2)
        old = kinds(2)
        with open(SURVIVORS_LOG, "w", buffering=1) as log:
            while True:
                time.sleep(3)
                middle, oldest = kinds(1), kinds(2)
                log.write(
                    f"{time.time():.2f} middle {sum(middle.values())}: {middle.most_common(8)}\n"
                )
                gained = oldest - old
                log.write(f"  oldest gained {sum(gained.values())}: {gained.most_common(12)}\n")
                old = oldest

    threading.Thread(target=watch, daemon=True).start()


def raw_stamp() -> Any:
    """
    Returns the trace's stamp function for the raw server and writer when BENCH_VARIANT has
    `trace` (they load no Django settings), else None.
    """
    import os

    if "trace" not in os.environ.get("BENCH_VARIANT", "").split(","):
        return None
    return _tracer()
