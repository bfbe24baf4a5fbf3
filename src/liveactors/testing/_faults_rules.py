"""What one fault rule is: the action it takes on a connection, which connections it targets,
its condition and how often it may act, and the :class:`Fault` handle a test holds to watch or
disarm it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypeAlias

import attrs
import trio

from ._wire import DEADLINE_REASON

if TYPE_CHECKING:
    from ._faults import Faults

__all__ = ["Action", "Close", "Drop", "Fault", "GoAway", "Target"]

Target: TypeAlias = int | Literal["next", "all", "open"]


@attrs.frozen
class Drop:
    """End the connection without a close frame (the client sees 1006)."""


@attrs.frozen
class Close:
    """Close the connection with a close frame."""

    code: int
    reason: str


@attrs.frozen
class GoAway:
    """Send ``goAway{timeLeft}``; with ``close``, end the connection when the time is up."""

    time_left: float
    close: bool = True
    code: int = 1011
    reason: str = DEADLINE_REASON


Action: TypeAlias = Drop | Close | GoAway


class Fault:
    """The handle of one armed rule."""

    def __init__(self, faults: Faults, description: str) -> None:
        self._faults = faults
        self.description = description
        #: How many times the rule acted (messages delayed or stalled, connections hit).
        self.fired = 0
        self._fired_event = trio.Event()
        self._released = trio.Event()
        self.removed = False

    def __repr__(self) -> str:
        return f"<Fault {self.description} fired={self.fired}>"

    def _fire(self) -> None:
        self.fired += 1
        self._fired_event.set()

    async def wait(self) -> None:
        """Wait until the rule has acted at least once."""
        await self._fired_event.wait()

    def remove(self) -> None:
        """Disarm the rule (stalled messages are released)."""
        self._faults._remove(self)

    def release(self) -> None:
        """Let messages held by a :meth:`Faults.stall` rule go, and disarm it."""
        self.remove()


@attrs.define(eq=False)
class _Rule:
    fault: Fault
    action: Action | None
    target: Target
    #: How many more times it may act (None: unlimited).
    times: int | None
    client_messages: int | None = None
    server_messages: int | None = None
    before: str | None = None
    after: str | None = None
    nth: int = 1
    at: float | None = None
    after_seconds: float | None = None
    #: For delay/stall rules: which messages (None: all).
    kind: str | None = None
    delay: float | None = None
    stall: bool = False
    claimed: bool = False

    @property
    def timed(self) -> bool:
        return self.at is not None or self.after_seconds is not None

    @property
    def immediate(self) -> bool:
        return (
            self.action is not None
            and not self.timed
            and (
                self.client_messages is None
                and self.server_messages is None
                and self.before is None
                and self.after is None
            )
        )

    def use(self) -> bool:
        """Count one firing; False when the rule was already used up."""
        if self.fault.removed or self.times == 0:
            return False
        if self.times is not None:
            self.times -= 1
        self.fault._fire()
        if self.times == 0:
            self.fault.remove()
        return True
