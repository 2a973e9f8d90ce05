"""
/healthz: is the database reachable, and does a message make it through the channel layer
(and the version store) and back? 200 when all do, 503 with the failing check otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from django.db import connection, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from streaming.conf import channel_layer
from streaming.publish import snapshot

logger = logging.getLogger("streaming.ops.health")

# Seconds each check may take before it counts as failed: well under a proxy's probe timeout.
TIMEOUT_SECONDS = 2.0
MESSAGE_TYPE = "streaming.ops.health"


class _Probe:
    """One event loop's health channel, reused so that checks leave no subscriptions behind."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.channel: str | None = None
        self.lock = asyncio.Lock()


_probes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Probe] = weakref.WeakKeyDictionary()


def _select_one() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def check_database() -> None:
    """Runs SELECT 1 on the default database; raises if it cannot."""
    await database_sync_to_async(_select_one)()


async def check_channel_layer() -> None:
    """Sends a message to this process's health channel and waits for it to come back."""
    # Any: new_channel(prefix) is in every real layer but not in the base class's stub.
    layer: Any = channel_layer()
    if layer is None:
        raise RuntimeError("No channel layer is configured.")
    loop = asyncio.get_running_loop()
    probe = _probes.get(loop)
    if probe is None or probe.layer is not layer:
        probe = _probes[loop] = _Probe(layer)
    async with probe.lock:
        if probe.channel is None:
            probe.channel = await layer.new_channel("streaming.ops.health.")
        nonce = uuid.uuid4().hex
        await layer.send(probe.channel, {"type": MESSAGE_TYPE, "nonce": nonce})
        # An answer to an earlier check that timed out may still be queued: skip it.
        while (await layer.receive(probe.channel)).get("nonce") != nonce:
            pass


def _read_clock() -> None:
    with snapshot.snapshot(None):
        pass


async def check_versions() -> None:
    """Reads the version clock in a snapshot, as every broadcast does."""
    await database_sync_to_async(_read_clock)()


CHECKS: dict[str, Callable[[], Awaitable[None]]] = {
    "database": check_database,
    "channel_layer": check_channel_layer,
    "versions": check_versions,
}


async def _run(name: str, check: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    """Returns {"ok", "ms"} for one check, with the error's class name when it failed."""
    started = time.monotonic()
    result: dict[str, Any] = {"ok": True}
    try:
        await asyncio.wait_for(check(), TIMEOUT_SECONDS)
    except Exception as exc:
        # The details (hosts, ports) go to the log only: /healthz is often public.
        logger.warning("streaming: health check %s failed: %r", name, exc)
        error = "Timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
        result = {"ok": False, "error": error}
    result["ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


@never_cache
@require_safe
@transaction.non_atomic_requests
async def healthz(request: HttpRequest) -> JsonResponse:
    """Returns 200 when every check passes, else 503; the body names each check's outcome."""
    results = await asyncio.gather(*(_run(name, check) for name, check in CHECKS.items()))
    checks = dict(zip(CHECKS, results, strict=True))
    healthy = all(result["ok"] for result in checks.values())
    body = {"status": "ok" if healthy else "unavailable", "checks": checks}
    return JsonResponse(body, status=200 if healthy else 503)
