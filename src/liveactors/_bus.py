"""Publish/subscribe of events, with a bounded buffer and an explicit overflow policy per
subscriber.

Overflow policies, when a subscriber's buffer is full:

* ``"block"``: the publisher waits for room, so a slow subscriber slows its conversation down
  (backpressure reaches the socket). Use it when every event matters.
* ``"drop_oldest"``: the oldest buffered event is discarded and counted in ``dropped``; the
  conversation never waits. Use it for dashboards and live views.
* ``"error"``: the subscription ends with :class:`~liveactors.SubscriberOverflow` after the
  events it already holds; the conversation never waits.

A subscriber leaving (its ``async with`` ends) never disturbs the conversation: a publisher
waiting for its room is released at once. One bus serves an orchestrator; subscriptions to one
conversation are indexed by its name so publishing costs O(its subscribers), not O(all).

A subscription to one conversation ends when that conversation does, unless it *follows* the
name (``follow=True``, what ``orch.subscribe(conversation=name)`` asks for): then it lives on and
sees the next conversation spawned under the same name, until it is unsubscribed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from typing import Final, Literal

import attrs
import trio

from . import events as ev
from ._errors import InvalidCommand, SubscriberOverflow

__all__ = ["OVERFLOW_POLICIES", "Bus", "Overflow", "Subscription", "SubscriptionStatistics"]

Overflow = Literal["block", "drop_oldest", "error"]
OVERFLOW_POLICIES: Final = ("block", "drop_oldest", "error")


@attrs.frozen
class SubscriptionStatistics:
    """How one subscriber is keeping up."""

    delivered: int
    dropped: int
    buffered: int
    buffer: int
    overflow: str


class Subscription:
    """An async iterator of events with its own bounded buffer (see the module docstring)."""

    __slots__ = (
        "_bus",
        "_consumer",
        "_error",
        "_queue",
        "_space",
        "buffer",
        "conversation",
        "delivered",
        "dropped",
        "ended",
        "follows",
        "overflow",
        "types",
    )

    def __init__(
        self,
        bus: Bus,
        types: tuple[type[ev.Event], ...],
        conversation: str | None,
        buffer: int,
        overflow: Overflow,
        follows: bool = False,
    ) -> None:
        self._bus = bus
        self.types = types
        self.conversation = conversation
        #: Outlives its conversation: sees the next one spawned under the same name.
        self.follows = follows
        self.buffer = buffer
        self.overflow = overflow
        self._queue: deque[ev.Event] = deque()
        self._consumer = trio.lowlevel.ParkingLot()
        self._space = trio.lowlevel.ParkingLot()
        self._error: SubscriberOverflow | None = None
        self.delivered = 0
        self.dropped = 0
        #: No more events will come (unsubscribed, overflowed, or its conversation closed).
        self.ended = False

    def __repr__(self) -> str:
        target = self.conversation or "*"
        return f"<Subscription {target} buffered={len(self._queue)} dropped={self.dropped}>"

    def statistics(self) -> SubscriptionStatistics:
        """Delivered, dropped and buffered counts."""
        return SubscriptionStatistics(
            self.delivered, self.dropped, len(self._queue), self.buffer, self.overflow
        )

    def _wants(self, event: ev.Event) -> bool:
        return not self.types or isinstance(event, self.types)

    def _offer(self, event: ev.Event, force: bool = False) -> bool:
        """Buffer ``event``; False if it must wait for room (``block`` policy). ``force``
        buffers it regardless (a conversation's last events must reach every subscriber)."""
        queue = self._queue
        if len(queue) >= self.buffer and not force:
            if self.overflow == "block":
                return False
            if self.overflow == "drop_oldest":
                queue.popleft()
                self.dropped += 1
            else:
                self.dropped += 1
                self._error = SubscriberOverflow(
                    f"subscriber fell behind: buffer of {self.buffer} events was full at "
                    f"{type(event).__name__} seq={event.seq} of {event.conversation!r}"
                )
                self._finish()
                return True
        queue.append(event)
        if self._consumer:  # only a parked consumer needs waking
            self._consumer.unpark()
        return True

    async def _put(self, event: ev.Event) -> None:
        """Wait for room, then buffer ``event`` (``block`` policy); gives up if the
        subscription ends meanwhile."""
        while not self.ended:
            if len(self._queue) < self.buffer:
                self._queue.append(event)
                self._consumer.unpark()
                return
            await self._space.park()

    def _finish(self) -> None:
        """No more events: wake the consumer and any publisher waiting for room."""
        self.ended = True
        self._bus._remove(self)
        self._consumer.unpark_all()
        self._space.unpark_all()

    def __aiter__(self) -> AsyncIterator[ev.Event]:
        return self

    async def __anext__(self) -> ev.Event:
        await trio.lowlevel.checkpoint_if_cancelled()
        queue = self._queue
        parked = False
        while not queue:
            if self.ended:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            await self._consumer.park()
            parked = True
        event = queue.popleft()
        self.delivered += 1
        if self._space:
            self._space.unpark()
        if not parked:  # parking was the checkpoint; otherwise yield now
            await trio.lowlevel.cancel_shielded_checkpoint()
        return event

    def receive_nowait(self) -> ev.Event | None:
        """The next buffered event, or None; never waits (for polling loops and dashboards)."""
        if not self._queue:
            if self.ended and self._error is not None:
                raise self._error
            return None
        self.delivered += 1
        event = self._queue.popleft()
        if self._space:
            self._space.unpark()
        return event


class Bus:
    """Routes events to subscriptions: per conversation, and orchestrator-wide."""

    def __init__(self) -> None:
        self._by_conversation: dict[str, list[Subscription]] = {}
        self._everywhere: list[Subscription] = []
        #: Events dropped by a conversation's subscribers that have since left.
        self._dropped_by_gone: dict[str, int] = {}
        #: By overflow policy, what the subscriptions that ended were handed (delivered,
        #: buffered or dropped) and dropped: ``liveactors.metrics`` adds the open ones'.
        self.retired_events: dict[str, int] = {}
        self.retired_dropped: dict[str, int] = {}

    def dropped(self, conversation: str) -> int:
        """Events dropped so far by ``conversation``'s own subscribers, present and gone."""
        present = sum(s.dropped for s in self._by_conversation.get(conversation, ()))
        return present + self._dropped_by_gone.get(conversation, 0)

    def subscribers(self, conversation: str) -> int:
        """How many subscriptions would see an event of ``conversation``."""
        return len(self._by_conversation.get(conversation, ())) + len(self._everywhere)

    def subscription_count(self, conversation: str | None = None) -> int:
        """Open subscriptions: to ``conversation`` alone when given (orchestrator-wide ones not
        counted), else all of them."""
        if conversation is not None:
            return len(self._by_conversation.get(conversation, ()))
        return len(self._everywhere) + sum(len(g) for g in self._by_conversation.values())

    def subscriptions(self) -> list[Subscription]:
        """Every open subscription: orchestrator-wide ones first, then per conversation."""
        subs = list(self._everywhere)
        for group in self._by_conversation.values():
            subs.extend(group)
        return subs

    def subscribe(
        self,
        types: tuple[type[ev.Event], ...] = (),
        *,
        conversation: str | None = None,
        buffer: int = 256,
        overflow: Overflow = "block",
        follow: bool = False,
    ) -> Subscription:
        """Register a subscription now (so no event published from here on is missed).

        ``follow`` keeps a subscription to ``conversation`` open when that conversation ends,
        for the next one spawned under its name (see the module docstring)."""
        if overflow not in OVERFLOW_POLICIES:
            raise InvalidCommand(
                f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, not {overflow!r}"
            )
        if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
            raise InvalidCommand(f"buffer must be an int >= 1, not {buffer!r}")
        for cls in types:
            if not (isinstance(cls, type) and issubclass(cls, ev.Event)):
                raise InvalidCommand(f"can only subscribe to event classes, not {cls!r}")
        # Subscriptions are indexed by name: anything else (a ConversationRef, say) would be
        # accepted and then silently never see an event.
        if conversation is not None and not isinstance(conversation, str):
            raise InvalidCommand(
                "conversation must be a conversation name (str) or None, not "
                f"{type(conversation).__name__}"
            )
        sub = Subscription(self, tuple(types), conversation, buffer, overflow, follow)
        if conversation is None:
            self._everywhere.append(sub)
        else:
            self._by_conversation.setdefault(conversation, []).append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """End ``sub``; buffered events stay readable, nothing more arrives."""
        if not sub.ended:
            sub._finish()

    def _remove(self, sub: Subscription) -> None:
        if sub.conversation is None:
            if sub in self._everywhere:
                self._everywhere.remove(sub)
                self._retire(sub)
            return
        subs = self._by_conversation.get(sub.conversation)
        if subs is not None and sub in subs:
            subs.remove(sub)
            self._retire(sub)
            if sub.dropped:
                gone = self._dropped_by_gone
                gone[sub.conversation] = gone.get(sub.conversation, 0) + sub.dropped
            if not subs:
                del self._by_conversation[sub.conversation]

    def _retire(self, sub: Subscription) -> None:
        """Keep what a leaving subscription was handed, for the metrics' totals."""
        policy = sub.overflow
        handed = sub.delivered + len(sub._queue) + sub.dropped
        self.retired_events[policy] = self.retired_events.get(policy, 0) + handed
        self.retired_dropped[policy] = self.retired_dropped.get(policy, 0) + sub.dropped

    def publish_nowait(self, event: ev.Event, *, force: bool = False) -> list[Subscription] | None:
        """Deliver ``event`` to every subscriber that has room; returns those it must wait
        for (``block`` policy), or None. ``force`` delivers past full buffers."""
        blocked: list[Subscription] | None = None
        subs = self._by_conversation.get(event.conversation)
        for group in (subs, self._everywhere):
            if not group:
                continue
            for sub in tuple(group) if len(group) > 1 else group:
                if sub._wants(event) and not sub._offer(event, force):
                    if blocked is None:
                        blocked = []
                    blocked.append(sub)
        return blocked

    async def publish(self, event: ev.Event) -> None:
        """Deliver ``event``, waiting for room in ``block`` subscribers."""
        blocked = self.publish_nowait(event)
        if blocked:
            for sub in blocked:
                await sub._put(event)

    def end_conversation(self, conversation: str) -> None:
        """The conversation is gone: its subscriptions end after their buffered events, except
        the ones that follow its name (they wait for the next conversation of the name)."""
        for sub in tuple(self._by_conversation.get(conversation, ())):
            if not sub.follows:
                sub._finish()
