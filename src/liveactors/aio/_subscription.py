"""Subscriptions for asyncio: an async iterator fed from a trio subscription.

A *pump* task in the guest's calls nursery holds the trio :class:`~liveactors.Subscription`
(``buffer`` and ``overflow`` apply to it exactly as in trio) and moves its events, in batches,
onto a small handoff deque read by the asyncio iterator: at most :data:`HANDOFF` events (or
``buffer``, if smaller). While the handoff is full the pump waits, so the trio subscription's own
policy decides what happens to a slow reader: ``"block"`` slows the conversation down,
``"drop_oldest"`` drops there, ``"error"`` ends the iteration with
:class:`~liveactors.SubscriberOverflow` after the events already handed over.

Waking is cheap on both sides: the pump resolves the asyncio reader's future directly (same
thread); the reader wakes the pump only when the handoff, having been full, is half empty again.
Closing (``aclose``, or leaving the ``async with``) cancels the pump, which unsubscribes; it
returns once that is done.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Final

import trio

from .. import _bus
from .. import events as ev
from .._errors import InvalidCommand, LiveError
from ._guest import Guest, settle, wait_out

__all__ = ["HANDOFF", "Subscription"]

#: Most events handed over to asyncio and not read yet, per subscription.
HANDOFF: Final = 16


class Subscription:
    """An asyncio async iterator of events (made by ``subscribe()`` of an
    :class:`~liveactors.aio.Orchestrator` or :class:`~liveactors.aio.ConversationRef`)."""

    def __init__(
        self,
        guest: Guest[Any],
        opener: Callable[[], AbstractAsyncContextManager[_bus.Subscription]],
        buffer: int,
        refusal: Callable[[], LiveError],
    ) -> None:
        self._guest = guest
        self._opener = opener
        self._refusal = refusal
        self._capacity = max(1, min(buffer, HANDOFF)) if isinstance(buffer, int) else HANDOFF
        self._queue: deque[ev.Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._room: trio.Event | None = None
        self._scope = trio.CancelScope()
        self._finished: asyncio.Future[None] = guest.loop.create_future()
        self._error: LiveError | None = None
        self._read = 0
        self._opened = False
        #: No more events will be handed over (the trio subscription ended, or was closed).
        self.ended = False
        #: The trio subscription behind this one (None until opened).
        self.trio: _bus.Subscription | None = None

    def __repr__(self) -> str:
        target = self.trio.conversation if self.trio is not None else None
        return f"<aio.Subscription {target or '*'} handed_over={len(self._queue)}>"

    # -- the trio side --------------------------------------------------------------------

    async def _open(self) -> None:
        """Start the pump; returns once the trio subscription is registered."""
        if self._opened:
            raise InvalidCommand("this subscribe() was entered already: call it again")
        self._opened = True
        await self._guest.call(self._start_pump, self._refusal)

    async def _start_pump(self) -> None:
        await self._guest.nursery.start(self._pump)

    async def _pump(self, *, task_status: trio.TaskStatus[None]) -> None:
        try:
            with self._scope:
                async with self._opener() as sub:
                    self.trio = sub
                    task_status.started()
                    try:
                        await self._forward(sub)
                    except LiveError as exc:  # SubscriberOverflow
                        self._error = exc
        finally:
            self.ended = True
            self._wake()
            settle(self._finished, None)

    async def _forward(self, sub: _bus.Subscription) -> None:
        queue = self._queue
        capacity = self._capacity
        async for event in sub:
            queue.append(event)
            while len(queue) < capacity:
                more = sub.receive_nowait()
                if more is None:
                    break
                queue.append(more)
            self._wake()
            if len(queue) >= capacity:
                room = self._room = trio.Event()
                await room.wait()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            settle(waiter, None)

    # -- the asyncio side -----------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[ev.Event]:
        return self

    async def __anext__(self) -> ev.Event:
        queue = self._queue
        while not queue:
            if self.ended:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            waiter = self._waiter = self._guest.loop.create_future()
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        return self._take()

    def receive_nowait(self) -> ev.Event | None:
        """The next event handed over, or None; never waits."""
        if not self._queue:
            if self.ended and self._error is not None:
                raise self._error
            return None
        return self._take()

    def _take(self) -> ev.Event:
        queue = self._queue
        event = queue.popleft()
        self._read += 1
        room = self._room
        if room is not None and len(queue) <= self._capacity // 2:
            self._room = None
            room.set()
        return event

    def statistics(self) -> _bus.SubscriptionStatistics:
        """Read, dropped and buffered counts (``buffered`` counts the trio subscription's
        buffer and the events handed over to asyncio but not read yet)."""
        sub = self.trio
        held = len(self._queue)
        if sub is None:
            return _bus.SubscriptionStatistics(self._read, 0, held, 0, "")
        own = sub.statistics()
        return _bus.SubscriptionStatistics(
            self._read, own.dropped, own.buffered + held, own.buffer, own.overflow
        )

    async def aclose(self) -> None:
        """Unsubscribe (events handed over already stay readable); returns once done."""
        if self.trio is not None and not self._finished.done():
            self._guest.cancel(self._scope)
            await wait_out(self._finished)


class SubscribeContext(AbstractAsyncContextManager[Subscription]):
    """``async with ...subscribe() as events``: opens on entry, unsubscribes on exit."""

    def __init__(self, subscription: Subscription) -> None:
        self._subscription = subscription

    async def __aenter__(self) -> Subscription:
        await self._subscription._open()
        return self._subscription

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._subscription.aclose()
