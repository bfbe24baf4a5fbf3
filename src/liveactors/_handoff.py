"""When a connection ends on purpose: after a goAway, or for a stop (no trio, no sockets).

A connection is ended deliberately in two cases, and both wait for a point where nothing is lost
or asked twice:

* **handoff** after ``goAway``: new input is *held* (tool results still go out). The switch
  comes once the turn reached a resumable point that a handle covers, or a moment after an idle
  point that no handle covers yet (the ledger then plans what the old handle lacks), or a
  little before the goAway's deadline; a service that never closes is left a grace after it.
* **stop**: the writer reached the stop command and *drains*: the answer in progress finishes,
  the handle covering it gets a moment to arrive, and the grace the caller gave is the limit.

The writer consults :meth:`HandoffTimer.ending` on every pass while holding or draining, and
sleeps until :meth:`HandoffTimer.wake_at` when it has nothing to send. What the conversation
is doing (a turn open, a question unanswered, a handle covering everything) is passed in, so
every decision can be tested with plain numbers.
"""

from __future__ import annotations

import enum
import math
from typing import Final

import attrs

__all__ = ["Ending", "HandoffTimer"]

#: Switch this long before a goAway's deadline (capped at a quarter of it) when only a late
#: handle is missing.
HANDOFF_MARGIN: Final = 1.0

#: How long past a goAway's deadline to wait for a service that does not close.
GOAWAY_SLACK: Final = 5.0

#: How long a stop waits for the handle that covers the last answer.
COVER_WAIT: Final = 0.25

#: After a goAway, how long a connection at a resumable point waits for its covering handle.
IDLE_HANDLE_WAIT: Final = 1.0


class Ending(enum.Enum):
    """How a connection the supervisor ends on purpose ends."""

    #: The conversation stops: close with 1000, no new connection.
    STOP = "stop"
    #: A planned switch: the next connection resumes.
    HANDOFF = "handoff"


@attrs.define
class HandoffTimer:
    """The handoff and stop timing of one conversation (see the module docstring).

    Times are the caller's clock (``trio.current_time()``); ``inf`` means "not set".
    """

    #: A goAway came: new input waits for the next connection.
    holding: bool = False
    #: The writer reached the stop command: the connection ends once the answer is done.
    draining: bool = False
    #: When a requested stop must be over, whatever is still in flight.
    stop_at: float = math.inf
    #: When the current connection must end (past a goAway's deadline).
    deadline: float = math.inf
    #: When to switch after a goAway even if a turn is in progress (the deadline is near).
    switch_by: float = math.inf
    #: After a goAway: when to switch from a resumable point that no handle covers yet.
    idle_switch_at: float = math.inf
    #: While draining: until when to wait for a handle covering the last answer.
    cover_until: float | None = None

    @property
    def pausing_input(self) -> bool:
        """Whether new input stays in the mailbox (a handoff or a stop is under way)."""
        return self.holding or self.draining

    def new_connection(self) -> None:
        """A new connection is up: a goAway was about the old one."""
        self.holding = False
        self.deadline = math.inf
        self.switch_by = math.inf
        self.idle_switch_at = math.inf
        self.cover_until = None

    def go_away(self, now: float, time_left: float) -> None:
        """A goAway with ``time_left`` seconds arrived: hold new input and set the limits.

        If the turn cannot finish in time, the service closes the connection at its deadline,
        after everything it sent (which is read, so no answer is asked twice); only a service
        that never closes is left after a slack of its own."""
        margin = min(HANDOFF_MARGIN, time_left / 4)
        self.holding = True
        self.switch_by = min(self.switch_by, now + max(0.0, time_left - margin))
        self.deadline = min(self.deadline, now + time_left + GOAWAY_SLACK)

    def stop_requested(self, now: float, grace: float) -> None:
        """A stop was asked for: it is over ``grace`` seconds from now at the latest."""
        self.stop_at = min(self.stop_at, now + max(0.0, grace))

    def drain(self) -> None:
        """The writer reached the stop command."""
        self.draining = True

    def stop_overdue(self, now: float) -> bool:
        """Whether a requested stop's grace has run out."""
        return now >= self.stop_at

    def _limit(self) -> float:
        return min(self.deadline, self.stop_at) if self.draining else self.deadline

    def delivery_limit(self, ending: Ending) -> float:
        """How long the reader may keep handing an event to a slow subscriber once the
        connection ends this way."""
        return self.stop_at if ending is Ending.STOP else self.deadline

    def ending(
        self, now: float, *, turn_open: bool, outstanding: bool, handoff_ready: bool
    ) -> Ending | None:
        """Whether to end the connection now, and how (None: not yet, or nothing to end).

        ``turn_open``: the model is answering, or waits for a blocking call's response, or said
        it goes on after its turn. ``outstanding``: a question was sent and its answer did not
        complete. ``handoff_ready``: switching now loses and repeats nothing (every question
        answered, and covered by a handle where the mode needs one).
        """
        if not (self.holding or self.draining):
            return None
        if self._ready(now, turn_open, outstanding, handoff_ready) or now >= self._limit():
            return Ending.STOP if self.draining else Ending.HANDOFF
        if self.draining:
            return None
        if turn_open or outstanding:
            self.idle_switch_at = math.inf
            return None
        # A resumable point, but no handle covers it yet. A goAway may leave minutes (300 s
        # seen on 3.8) and new input is held meanwhile, so wait a moment for the handle, not
        # for the deadline; then switch, and the ledger plans what the old handle lacks.
        if self.idle_switch_at == math.inf:
            self.idle_switch_at = now + IDLE_HANDLE_WAIT
        if now >= self.idle_switch_at or now >= self.switch_by:
            return Ending.HANDOFF
        return None

    def _ready(self, now: float, turn_open: bool, outstanding: bool, handoff_ready: bool) -> bool:
        """Whether the connection can end now without losing or repeating anything."""
        if turn_open:
            return False
        if not self.draining:
            return handoff_ready
        if outstanding:
            return False
        if handoff_ready:
            return True
        # Answered but not covered by a handle yet: a per-turn service sends one right after
        # the turn, so wait a moment for it (a saved handle then holds the last answer); a
        # service that sends none must not hold the stop for the whole grace.
        if self.cover_until is None:
            self.cover_until = now + COVER_WAIT
        return now >= self.cover_until

    def wake_at(self, now: float) -> float:
        """When the writer must look again even if nothing is put in the mailbox."""
        wake = self._limit()
        if self.holding and not self.draining:
            wake = min(wake, self.idle_switch_at)
            if now < self.switch_by:
                wake = min(wake, self.switch_by)
        if self.cover_until is not None:
            wake = min(wake, self.cover_until)
        return wake
