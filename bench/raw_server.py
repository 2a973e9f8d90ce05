"""
The raw limit: an asyncio `websockets` server with no Django that SUBSCRIBEs to one
Redis pub/sub channel and re-sends each message to every connected client.

Run as `python -m bench.raw_server PORT REDIS_URL CHANNEL`; prints "ready" once listening.
"""

from __future__ import annotations

import asyncio
import sys

from redis import asyncio as aioredis
from websockets.asyncio.server import broadcast, serve

from bench.analysis import raw_stamp


async def main(port: int, redis_url: str, channel: str) -> None:
    """Serves until killed: one subscription, one broadcast per published message."""
    clients: set = set()
    stamp = raw_stamp()

    async def handler(connection) -> None:
        clients.add(connection)
        try:
            await connection.wait_closed()
        finally:
            clients.discard(connection)

    redis = aioredis.from_url(redis_url)
    pubsub = redis.pubsub()
    await pubsub.subscribe(channel)
    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None):
        print("ready", flush=True)
        async for message in pubsub.listen():
            if message["type"] == "message":
                broadcast(clients, message["data"], text=True)
                if stamp is not None:
                    stamp("sent")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
