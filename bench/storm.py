"""
`make storm`: 1,000 clients connect and subscribe at the same instant (no pacing), then
one write must reach every one of them. Reports failures, the time the storm took, and
the Redis connections the server opened (redis-py 8's async pools raise past their cap;
docs/security.md).

Run as `python -m bench.storm [--clients N] [--connect-timeout S]`. daphne refuses (403) or
drops a handshake its application has not accepted within --websocket_connect_timeout (5 s
by default); --connect-timeout S starts daphne with S instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any

import psutil
from redis import Redis

from bench.soak import SEED, Site, Subscriber

WRITE = """
from django.utils import timezone
from metrics.models import Metric, Series
for series in Series.objects.filter(slug__startswith="soak-"):
    Metric.objects.create(series=series, timestamp=timezone.now(), value=123456.0)
"""


def redis_clients(url: str) -> int:
    """Returns how many connections Redis has open right now."""
    return int(Redis.from_url(url).info("clients")["connected_clients"])


def listen_overflows() -> int:
    """Returns the kernel's count of connections dropped by a full listen queue (all ports)."""
    with open("/proc/net/netstat") as stats:
        lines = [line.split() for line in stats if line.startswith("TcpExt:")]
    return int(dict(zip(lines[0], lines[1], strict=True)).get("ListenOverflows", 0))


async def storm(args: argparse.Namespace) -> dict[str, Any]:
    """Runs one storm and returns its figures."""
    timeout = getattr(args, "connect_timeout", None)
    site = Site(("--websocket_connect_timeout", str(timeout)) if timeout else ()).start()
    errors: list[str] = []
    try:
        site.run(SEED.format(count=args.series))
        clients = [
            Subscriber(site.ws_url, f"soak-{i % args.series}", errors) for i in range(args.clients)
        ]
        redis_before = redis_clients(site.redis.url)
        server, me = psutil.Process(site.server.pid), psutil.Process()
        cpu = [sum(server.cpu_times()[:2]), sum(me.cpu_times()[:2])]
        overflows = listen_overflows()
        started = time.monotonic()
        await asyncio.gather(*(c.open() for c in clients))
        storm_seconds = time.monotonic() - started
        cpu = [sum(server.cpu_times()[:2]) - cpu[0], sum(me.cpu_times()[:2]) - cpu[1]]
        overflows = listen_overflows() - overflows
        connected = sum(1 for c in clients if c.reader is not None)
        redis_after = redis_clients(site.redis.url)

        before = {c: c.version for c in clients}
        site.run(WRITE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            delivered = sum(1 for c in clients if c.version > before[c])
            if delivered == connected:
                break
            await asyncio.sleep(0.1)
        rss = site.rss()
        for client in clients:
            await client.close()
    finally:
        site.stop()
    kinds = Counter(e.split(": ", 2)[-1].split("(")[0] for e in errors)
    return {
        "clients": args.clients,
        "connected_and_subscribed": connected,
        "failed": args.clients - connected,
        "failure_kinds": dict(kinds),
        "storm_seconds": round(storm_seconds, 2),
        "server_cpu_seconds": round(cpu[0], 2),
        "clients_cpu_seconds": round(cpu[1], 2),
        "listen_overflows": overflows,
        "daphne_connect_timeout": timeout or 5,
        "write_delivered_to": delivered,
        "redis_connections_before": redis_before,
        "redis_connections_after": redis_after,
        "server_rss_mib": round(rss, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Runs the storm; exits non-zero unless every client connected and got the write."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--series", type=int, default=20)
    parser.add_argument("--connect-timeout", type=int, default=None, help="daphne's, in s")
    args = parser.parse_args(argv)
    figures = asyncio.run(storm(args))
    print(json.dumps(figures))
    print(
        f"connected: {figures['connected_and_subscribed']}/{figures['clients']} in "
        f"{figures['storm_seconds']} s   write delivered to: {figures['write_delivered_to']}   "
        f"Redis connections: {figures['redis_connections_after']}"
    )
    ok = figures["failed"] == 0 and figures["write_delivered_to"] == figures["clients"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
