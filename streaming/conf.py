"""streaming/'s settings: one namespaced STREAMING dict, read lazily like DRF's api_settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    # Largest text frame a client may send, in bytes; larger ones close the socket (4009).
    "MAX_MESSAGE_BYTES": 64 * 1024,
    # Subscriptions one connection may hold at once.
    "MAX_SUBSCRIPTIONS": 50,
    # Client messages per second one connection may send (token bucket), and its burst.
    "RATE_PER_SECOND": 20.0,
    "RATE_BURST": 40,
    # Replies of 429 a flooding connection gets before it is closed (4029).
    "RATE_STRIKES": 20,
    # Seconds between re-checks of a connection's right to its subscriptions.
    "RECHECK_SECONDS": 5.0,
    # Unsent bytes a socket may hold before it gets only the newest update per key.
    "SOCKET_BUFFER_BYTES": 64 * 1024,
    # Unsent bytes past which a reply or a pong closes the socket instead (4008).
    "MAX_UNSENT_BYTES": 1024 * 1024,
    # Seconds between the hub's channel-layer heartbeats; a lost one triggers a resync.
    "HEARTBEAT_SECONDS": 0.5,
    # Seconds between the `heartbeat` frames every socket gets (docs/protocol.md); a client
    # that hears nothing for 2.5 intervals reconnects. 0 turns them off.
    "KEEPALIVE_SECONDS": 10.0,
    # How long a writer keeps retrying a failed broadcast, and how long exit waits for it.
    "RETRY_SECONDS": 30.0,
    "EXIT_FLUSH_SECONDS": 5.0,
    # The relay (every server process) reads the database's change log: SQLite is polled
    # this often (PRAGMA data_version, microseconds a poll); PostgreSQL wakes it by NOTIFY.
    "RELAY_POLL_SECONDS": 0.02,
    # With a shared channel layer, writers' own broadcasts usually arrive first (within a
    # few ms): the relay looks at the keys it read this long after their commit, and re-reads
    # only those still behind (a writer killed after its commit, another program, a script
    # whose first broadcast is still connecting).
    "RELAY_GRACE_SECONDS": 0.02,
    # It reads the log at least this often anyway (a NOTIFY missed while reconnecting).
    "RELAY_SAFETY_SECONDS": 1.0,
    # Changes are kept this long, and at most this many: a relay that falls further behind
    # re-reads every key it serves.
    "CHANGE_RETENTION_SECONDS": 60.0,
    "CHANGE_LOG_MAX_ROWS": 10_000,
}


class StreamingSettings:
    """Attribute access to STREAMING with defaults; cached until settings change."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Invalid STREAMING setting: {name!r}")
        if name not in self._cache:
            self._cache[name] = getattr(settings, "STREAMING", {}).get(name, DEFAULTS[name])
        return self._cache[name]

    def reload(self) -> None:
        """Forgets cached values, so the next read sees the current settings."""
        self._cache.clear()


streaming_settings = StreamingSettings()
_local_layer: list[Any] = []


def channel_layer() -> Any:
    """
    Returns the default channel layer; without CHANNEL_LAYERS, one in-memory layer for the
    process (one machine needs no Redis: the database relay carries changes between processes).
    """
    from channels.layers import InMemoryChannelLayer, get_channel_layer

    layer = get_channel_layer()
    if layer is not None:
        return layer
    if not _local_layer:
        _local_layer.append(InMemoryChannelLayer())
    return _local_layer[0]


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting in ("STREAMING", "CHANNEL_LAYERS"):
        streaming_settings.reload()


setting_changed.connect(_reload)
