"""Admission: whether new work may start, how many sessions run at once, how fast they connect.

* **Open or closing.** Until :meth:`Admission.close` (the orchestrator's shutdown), spawns are
  admitted; from then on they are refused with :class:`~liveactors.InvalidCommand`, the ones
  waiting for a slot included.
* **Session slots.** ``max_sessions`` is a FIFO semaphore of slots. A spawn takes a
  :class:`Slot` (waiting at most its patience, then :class:`~liveactors.AdmissionTimeout`)
  before its first connect; the conversation holds it across reconnects and gives it back when
  it ends, however it ends. So the number of open sockets never exceeds ``max_sessions``.
* **Connect rate.** Every connect of every conversation — first connects, reconnects after a
  drop, GoAway handoffs — first passes :meth:`Admission.gate`, which takes a token from one
  bucket (``connect_rate`` per second, at most ``connect_burst`` saved up; 1 by default, so
  connects are evenly spaced): a mass drop reconnects at the rate, not all at once.
"""

from __future__ import annotations

from typing import Final

import attrs
import trio

from ._errors import AdmissionTimeout, InvalidCommand
from ._ratelimit import TokenBucket

__all__ = ["Admission", "Slot"]

_SHUTTING_DOWN: Final = "the orchestrator is shutting down: {what} accepts no new work"


@attrs.define(eq=False)
class Slot:
    """One session slot, held by one conversation from admission until it ends."""

    _admission: Admission
    held: bool = True

    def release(self) -> None:
        """Give the slot back; only the first call does anything (every way out calls it)."""
        if self.held:
            self.held = False
            self._admission._released()


class Admission:
    """Session slots and the connect bucket of one orchestrator (see the module docstring)."""

    def __init__(
        self,
        max_sessions: int | None = None,
        connect_rate: float | None = None,
        connect_burst: float = 1.0,
    ) -> None:
        if max_sessions is not None and (
            isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1
        ):
            raise InvalidCommand(f"max_sessions must be an int >= 1 or None, not {max_sessions!r}")
        self.max_sessions = max_sessions
        self._slots = trio.Semaphore(max_sessions) if max_sessions is not None else None
        self._bucket = (
            TokenBucket(connect_rate, burst=connect_burst) if connect_rate is not None else None
        )
        #: One cancel scope per spawn waiting for a slot: :meth:`close` cancels them.
        self._waiting: set[trio.CancelScope] = set()
        self.closed = False
        #: Slots held now, and the most ever held at once.
        self.sessions = 0
        self.peak_sessions = 0
        #: Connects that passed the gate.
        self.connects = 0

    @property
    def waiting(self) -> int:
        """Spawns waiting for a slot now."""
        return len(self._waiting)

    def check_open(self, what: str) -> None:
        """Raise :class:`~liveactors.InvalidCommand` once closing: ``what`` takes no new work."""
        if self.closed:
            raise self.refusal(what)

    def refusal(self, what: str) -> InvalidCommand:
        """The error that says ``what`` accepts no new work: shutdown has begun."""
        return InvalidCommand(_SHUTTING_DOWN.format(what=what))

    def close(self) -> None:
        """Admit nothing more; spawns waiting for a slot are refused at once."""
        self.closed = True
        for scope in self._waiting:
            scope.cancel()

    async def admit(self, name: str, patience: float | None) -> Slot:
        """A session slot for the conversation ``name``, waiting at most ``patience`` seconds
        (None: as long as it takes) behind the spawns that came first."""
        self.check_open("spawn()")
        if self._slots is None:
            await trio.lowlevel.checkpoint()
        else:
            with trio.CancelScope() as scope:
                if patience is not None:
                    scope.deadline = trio.current_time() + patience
                self._waiting.add(scope)
                try:
                    await self._slots.acquire()
                finally:
                    self._waiting.discard(scope)
            if scope.cancelled_caught:
                self.check_open("spawn()")
                raise AdmissionTimeout(
                    f"no session slot became free within {patience:g}s for {name!r}: "
                    f"all {self.max_sessions} (max_sessions) are taken and "
                    f"{self.waiting} other spawn(s) are waiting"
                )
        self.sessions += 1
        self.peak_sessions = max(self.peak_sessions, self.sessions)
        return Slot(self)

    def _released(self) -> None:
        self.sessions -= 1
        if self._slots is not None:
            self._slots.release()

    async def gate(self) -> None:
        """Awaited before every connect: takes a token from the bucket (if there is one)."""
        if self._bucket is not None:
            await self._bucket.acquire()
        self.connects += 1
