"""streaming/'s settings: one namespaced STREAMING dict, read lazily like DRF's api_settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

DEFAULTS: dict[str, Any] = {
    # Where per-key versions come from; must be shared by every process that broadcasts.
    "VERSION_STORE": {"BACKEND": "streaming.publish.versions.LocalVersionStore", "OPTIONS": {}},
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
    # How long a writer keeps retrying a failed broadcast, and how long exit waits for it.
    "RETRY_SECONDS": 30.0,
    "EXIT_FLUSH_SECONDS": 5.0,
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
        _backends.clear()


streaming_settings = StreamingSettings()
_backends: dict[str, Any] = {}


def version_store() -> Any:
    """Returns the process's version store, built from STREAMING["VERSION_STORE"]."""
    if "versions" not in _backends:
        config = streaming_settings.VERSION_STORE
        _backends["versions"] = import_string(config["BACKEND"])(**config.get("OPTIONS", {}))
    return _backends["versions"]


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting in ("STREAMING", "CHANNEL_LAYERS"):
        streaming_settings.reload()


setting_changed.connect(_reload)
