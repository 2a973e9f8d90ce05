"""
Per-connection limits on what a client may send (frame size, message rate), and the close
codes the consumer uses (docs/security.md). Autobahn lets an application close only with
1000 or 3000-4999, so they are all 4xxx.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# The socket held more than STREAMING["MAX_UNSENT_BYTES"] unsent: its client stopped reading.
CLOSE_NOT_READING = 4008
# The frame was larger than STREAMING["MAX_MESSAGE_BYTES"].
CLOSE_TOO_LARGE = 4009
# The connection kept sending faster than its rate after RATE_STRIKES refusals.
CLOSE_RATE_LIMITED = 4029
# Redis (versions or channel layer) failed during a subscribe: reconnect with backoff.
CLOSE_UNAVAILABLE = 4503


def too_large(text: str | None, data: bytes | None, limit: int) -> bool:
    """Returns whether a frame's UTF-8 size exceeds `limit` bytes."""
    if data is not None:
        return len(data) > limit
    if text is None:
        return False
    # A character takes 1 to 4 bytes: encode only when the length alone cannot decide.
    if len(text) > limit:
        return True
    return len(text) * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit


class TokenBucket:
    """Allows `rate` events per second on average and bursts of up to `burst` events."""

    # One per connection: slots keep it to one small object.
    __slots__ = ("burst", "clock", "rate", "tokens", "updated")

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()

    def take(self) -> bool:
        """Takes one token; returns False when none is left."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    @property
    def full(self) -> bool:
        """Returns whether the bucket refilled to its burst (as of the last take)."""
        return self.tokens >= self.burst - 1


class FloodGuard:
    """
    A connection's message rate: each frame takes a token; a frame without one is refused
    (a strike), and `strikes` refusals before the bucket refills mean the socket is closed.
    """

    ALLOW, REFUSE, CLOSE = "allow", "refuse", "close"
    __slots__ = ("bucket", "max_strikes", "strikes")

    def __init__(
        self, rate: float, burst: int, strikes: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.bucket = TokenBucket(rate, burst, clock)
        self.max_strikes = strikes
        self.strikes = 0

    def check(self) -> str:
        """Called for each incoming frame; returns ALLOW, REFUSE or CLOSE."""
        if self.bucket.take():
            # A client that slowed down until its bucket refilled starts afresh.
            if self.bucket.full:
                self.strikes = 0
            return self.ALLOW
        self.strikes += 1
        return self.CLOSE if self.strikes >= self.max_strikes else self.REFUSE
