"""A token bucket on trio's clock: spreads connects so that a mass reconnect after a network
blip does not stampede the service."""

from __future__ import annotations

import trio

from ._errors import InvalidCommand

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; waiters are served in order."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        # ``not x > 0`` / ``not x >= 1`` also refuse NaN: a NaN rate or burst compares false
        # with everything, so the bucket would never wait and never limit anything.
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            raise InvalidCommand(f"connect_rate must be a positive number, not {rate!r}")
        if burst is not None and (
            isinstance(burst, bool) or not isinstance(burst, int | float) or not burst >= 1
        ):
            raise InvalidCommand(f"burst must be a number >= 1, not {burst!r}")
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else max(1.0, self.rate)
        self._tokens = self.burst
        self._stamp: float | None = None
        self._lock = trio.Lock()
        #: How many tokens were handed out (for tests and statistics).
        self.granted = 0

    def _refill(self) -> None:
        now = trio.current_time()
        if self._stamp is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self) -> None:
        """Take one token, waiting for it if the bucket is empty."""
        async with self._lock:
            self._refill()
            if self._tokens < 1:
                await trio.sleep((1 - self._tokens) / self.rate)
                self._refill()
            self._tokens -= 1
            self.granted += 1
