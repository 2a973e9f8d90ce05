"""
`make bench-5000`: issue 13's N = 5,000 point, on its own (it takes about 3 minutes).
Raw and this project (daphne) with 5,000 subscribers at 10 writes/s, then a storm of
5,000 connects against the project (bench/storm.py); prints the table, the ratios, the
clients' CPU beside the server's, and the targets.

python -m bench.n5000 [--n 5000] [--writes 200] [--rate 10] [--processes 4] [--repeat 1]
                      [--clients bench.lean_clients] [--storm-timeout S] [--no-storm]

The subscribers are lean clients (bench/lean_clients.py) in 4 processes of 1,250 sockets:
`websockets` clients would take more CPU than the server at 50,000 messages/s, on the
same 2 cores (docs/benchmarks.md, "N = 5,000").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench import report, storm
from bench.run import Run, best, run_one
from bench.targets import ROOT, TARGETS

STORM_SECONDS = 15.0
NAMES = ("raw", "project")


def sizing(results: list[dict[str, Any]]) -> list[str]:
    """Returns one line per run: the clients' CPU beside the server's over the paced phase."""
    lines = ["client sizing (CPU over the paced phase; 1 core = 100%):"]
    for r in results:
        clients, server = sum(r["clients_cpu_seconds"]), r["server_cpu_seconds"]
        seconds = r["paced_seconds"]
        busiest = max(r["clients_cpu_seconds"])
        lines.append(
            f"  {r['target']} N={r['n']}: {r['client_processes']} client processes, "
            f"connected {r['connected']} in {r['connect_seconds']:.1f} s; clients "
            f"{clients:.1f} s CPU ({clients / seconds:.0%}, busiest process "
            f"{busiest / seconds:.0%}) vs server {server:.1f} s ({server / seconds:.0%}) "
            f"over {seconds:.0f} s"
        )
    return lines


def targets(results: list[dict[str, Any]], storm_figures: dict[str, Any] | None) -> str:
    """Returns issue 13's N = 5,000 targets, each met or NOT MET with its value."""
    lines = [report.targets(results)]
    if storm_figures is not None:
        f = storm_figures
        ok = f["failed"] == 0 and f["storm_seconds"] <= STORM_SECONDS
        ok = ok and f["write_delivered_to"] == f["clients"]
        mark = "met" if ok else "NOT MET"
        lines.append(
            f"  [{mark:>7}] storm of {f['clients']} connects: all succeed within "
            f"{STORM_SECONDS:.0f} s: {f['connected_and_subscribed']} connected, "
            f"{f['failed']} failed {f['failure_kinds']}, {f['storm_seconds']} s"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Runs the N = 5,000 point and the storm; prints the table and the targets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1, help="rounds (best p99 kept)")
    parser.add_argument("--clients", default="bench.lean_clients")
    parser.add_argument(
        "--storm-timeout", type=int, default=None, help="daphne's connect timeout (default 5 s)"
    )
    parser.add_argument("--no-storm", action="store_true")
    parser.add_argument("--json", default=str(ROOT / "artifacts" / "bench-5000.json"))
    args = parser.parse_args(argv)
    began, load = time.time(), os.getloadavg()
    plan = {
        name: Run(
            name, args.n, writes=args.writes, burst=0, rate=args.rate,
            clients=args.clients, processes=args.processes,
        )
        for name in NAMES
    }  # fmt: skip
    tries: dict[str, list[dict[str, Any]]] = {}
    running = {name: TARGETS[name]() for name in NAMES}
    try:
        for target in running.values():
            target.start()
        # Rounds interleave the targets, so a spell of load elsewhere hits them alike.
        for _ in range(args.repeat):
            for name in NAMES:
                print(f"bench: {name} N={args.n} ...", file=sys.stderr, flush=True)
                tries.setdefault(name, []).append(run_one(running[name], plan[name]))
    finally:
        for target in running.values():
            target.stop()
    results = [best(found) for found in tries.values()]
    storm_figures = None
    if not args.no_storm:
        print(f"bench: storm of {args.n} connects ...", file=sys.stderr, flush=True)
        options = argparse.Namespace(clients=args.n, series=20, connect_timeout=args.storm_timeout)
        storm_figures = asyncio.run(storm.storm(options))
    elapsed = time.time() - began
    meta = {"elapsed": elapsed, "cores": os.cpu_count(), "load_before": load}
    meta["load_after"] = os.getloadavg()
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**meta, "results": results, "storm": storm_figures}, indent=1))
    print(report.table(results))
    print()
    print("\n".join(sizing(results)))
    if storm_figures is not None:
        print(f"storm: {json.dumps(storm_figures)}")
    print()
    print(targets(results, storm_figures))
    print(report.footer(elapsed, load, meta["load_after"], out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
