"""
Slow clients (issue 6 §4): the latency of subscribers that read, with and without a few
that stop reading, and the server's RSS meanwhile. Boards of the example app carry ~100 KB
payloads, so the stalled sockets' backlog outgrows the kernel's buffers within seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from bench.measures import phase
from bench.targets import ROOT, WRITER, ProjectTarget

READERS, STALLED, NOTES, WRITES, RATE = 20, 5, 200, 100, 20.0


def _clients(target: ProjectTarget, kind: str, count: int, board: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.clients", kind, target.ws_url, str(count), board],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def run_stall(target: ProjectTarget, stalled: int) -> dict[str, Any]:
    """Runs READERS readers (and `stalled` stalled sockets) on one board; returns figures."""
    board = f"stall-{stalled}"
    subprocess.run([*WRITER, "setup-board", board, str(NOTES)], cwd=ROOT, env=target.env())
    procs = [_clients(target, "board", READERS, board)]
    if stalled:
        procs.append(_clients(target, "stalled", stalled, board))
    try:
        for proc in procs:
            assert proc.stdout is not None
            proc.stdout.readline()
        time.sleep(1.0)
        rss_start = target.process.memory_info().rss
        records = target.write_args([*WRITER, "board", board, "-"], WRITES, RATE, 0)
        rss_end = target.process.memory_info().rss
        reader = procs[0]
        assert reader.stdin is not None
        assert reader.stdout is not None
        reader.stdin.write(f"wait {WRITES} 30\n")
        reader.stdin.flush()
        reader.stdout.readline()
        cutoff = time.time()
        reader.stdin.write("dump\n")
        reader.stdin.flush()
        data = json.loads(reader.stdout.readline())
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    figures = phase(records, data["traces"], data["received"], cutoff, 0.0).summary()
    frame = NOTES * 520
    return {
        "stalled": stalled,
        "readers": READERS,
        "p50": figures["p50"],
        "p99": figures["p99"],
        "max": figures["max"],
        "lost_share": figures["lost_share"],
        "rss_growth": rss_end - rss_start,
        "unbuffered_backlog": stalled * WRITES * frame,
    }
