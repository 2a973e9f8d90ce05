"""
The one place streaming reaches into Django's private API, for QuerySet.delete()'s speed:
Django's Collector deletes rows in one statement ("fast delete") only when no delete signal
has a receiver, and streaming's own receivers would make it load and signal every row.
StreamingQuerySet reads the keys itself, so its collector may ignore streaming's receivers.

Both reach-ins are checked once (a canary test pins them); when one is gone, deletes run as
Django's slow path with signals, still correct, and the log says so once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.db import models
from django.db.models.deletion import Collector
from django.dispatch import Signal

logger = logging.getLogger("streaming.capture")

ATTACHED = hasattr(Signal, "_live_receivers") and hasattr(Collector, "_has_signal_listeners")
if not ATTACHED:
    logger.warning(
        "streaming: Django's Signal._live_receivers or Collector._has_signal_listeners is "
        "gone: QuerySet.delete() of observed models loads and signals each row (slower)"
    )


def others_receive(model: type[models.Model], signals: Iterable[tuple[Signal, Callable]]) -> bool:
    """Returns whether anything but the given (signal, receiver) pairs receives `model`'s."""
    if not ATTACHED:
        return True
    for signal, ours in signals:
        # Collector only asks has_listeners(); streaming must tell its own receivers apart.
        sync, asynchronous = signal._live_receivers(model)
        if any(receiver is not ours for receiver in [*sync, *asynchronous]):
            return True
    return False


class KeysReadCollector(Collector):
    """A Collector that may fast-delete `keys_read` rows: their keys were read already."""

    def __init__(
        self, *args: Any, keys_read: type[models.Model], others: Callable[..., bool], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.keys_read = keys_read
        self.others = others

    def _has_signal_listeners(self, model: type[models.Model]) -> bool:
        if model is self.keys_read:
            return self.others(model)
        return bool(super()._has_signal_listeners(model))  # type: ignore[misc]
