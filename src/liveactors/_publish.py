"""Publishing one conversation's events: to its subscribers, then to its ``on_event`` hook.

Every event is numbered before it is published, so it must reach every subscriber even when
the connection it came on ends meanwhile, or ``seq`` would have a gap. A ``block`` subscriber
without room holds the publisher; for the reader that wait is shielded (a stop or a handoff
does not cut it) and only the switch's own deadline, or the conversation's end, bounds it
(:meth:`Publisher.bound_delivery`): then the event goes into the buffer anyway, past its limit.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

import trio

from . import events as ev
from ._bus import Bus
from ._conversation import Conversation

__all__ = ["Publisher"]

log = logging.getLogger("liveactors.supervisor")

#: How long on_event may take over the last events of a cancelled conversation.
FINAL_HOOK_TIME: Final = 1.0


class Publisher:
    """Hands a conversation's events to the bus and the actor's ``on_event`` hook."""

    __slots__ = ("_delivery", "_on_event", "actor", "bus", "journal", "name")

    def __init__(
        self,
        name: str,
        bus: Bus,
        actor: Conversation,
        journal: Callable[[ev.Event], None] | None = None,
    ) -> None:
        self.name = name
        self.bus = bus
        self.actor = actor
        #: Sees every event first, synchronously and in order (a cluster worker's record).
        self.journal = journal
        self._on_event = type(actor).on_event is not Conversation.on_event
        #: Scope of the reader's delivery waiting for room in a ``block`` subscriber.
        self._delivery: trio.CancelScope | None = None

    @property
    def holding_reader(self) -> bool:
        """Whether the reader is waiting for room in a subscriber (so it is not reading)."""
        return self._delivery is not None

    async def deliver(self, event: ev.Event, *, reader: bool = False) -> None:
        """Publish ``event``, waiting for room in ``block`` subscribers; then ``on_event``.

        ``reader``: the event came from the service and is accounted already, so the wait is
        shielded (see the module docstring)."""
        if self.journal is not None:
            self.journal(event)
        blocked = self.bus.publish_nowait(event)
        if blocked:
            if reader:
                waiting = list(blocked)
                with trio.CancelScope(shield=True) as self._delivery:
                    while waiting:
                        await waiting[0]._put(event)
                        waiting.pop(0)
                self._delivery = None
                for sub in waiting:
                    if not sub.ended:
                        sub._offer(event, force=True)
            else:
                for sub in blocked:
                    await sub._put(event)
        if self._on_event:
            await self.hook(self.actor.on_event, event)

    def deliver_now(self, events: Iterable[ev.Event]) -> None:
        """Publish ``events`` at once, past full buffers (no hook): the rest of a frame whose
        delivery was cut, or a conversation's last events."""
        for event in events:
            if self.journal is not None:
                self.journal(event)
            self.bus.publish_nowait(event, force=True)

    def bound_delivery(self, deadline: float) -> None:
        """A delivery the reader is waiting on may go on until ``deadline`` at the latest."""
        if self._delivery is not None:
            self._delivery.deadline = deadline

    def cut_delivery(self) -> None:
        """The conversation itself is cancelled: a slow subscriber must not hold that up."""
        if self._delivery is not None:
            self._delivery.cancel()

    async def hook(self, hook: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run a user hook; one that raises is logged and the conversation carries on."""
        try:
            await hook(*args)
        except Exception:
            log.exception("%s: %s raised", self.name, getattr(hook, "__name__", "a hook"))

    async def final_hooks(self, events: Iterable[ev.Event]) -> None:
        """The last events reach ``on_event`` too, even when the conversation was cancelled;
        a hook gets a moment, not forever."""
        if not self._on_event:
            return
        with trio.CancelScope(shield=True), trio.move_on_after(FINAL_HOOK_TIME):
            for event in events:
                await self.hook(self.actor.on_event, event)
