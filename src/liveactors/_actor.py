"""A generic actor: a bounded mailbox, a ``handle(message)`` method, and a nursery of its own.

Subclass :class:`Actor` for routers, recorders and bridges that live beside conversations:
``await orch.spawn_actor(MyActor())`` runs it in the orchestrator's nursery, messages are handled
one at a time in the order they were sent, and ``self.nursery`` holds any tasks it starts, so
stopping the actor stops them too.
"""

from __future__ import annotations

import logging
from typing import Generic, TypeVar

import trio

from ._errors import ConversationStopped, InvalidCommand
from ._exception_groups import sole_exception

__all__ = ["Actor"]

log = logging.getLogger("liveactors.actor")

M = TypeVar("M")


class Actor(Generic[M]):
    """Base class of custom actors: override :meth:`handle` (and optionally the hooks)."""

    #: How many messages may wait before ``send`` waits for room.
    mailbox_size: int = 64

    def __init__(self, name: str | None = None) -> None:
        self.name = name or f"{type(self).__name__}-{id(self):x}"
        self._send, self._receive = trio.open_memory_channel[M](self.mailbox_size)
        self._nursery: trio.Nursery | None = None
        self._done = trio.Event()
        self.error: BaseException | None = None

    def __repr__(self) -> str:
        state = "done" if self._done.is_set() else "running" if self._nursery else "new"
        return f"<{type(self).__name__} {self.name!r} {state}>"

    @property
    def nursery(self) -> trio.Nursery:
        """The actor's own nursery, for tasks that should live exactly as long as it does."""
        if self._nursery is None:
            raise InvalidCommand(f"actor {self.name!r} is not running")
        return self._nursery

    async def handle(self, message: M) -> None:
        """Handle one message (messages come one at a time, in order)."""
        raise NotImplementedError

    async def on_start(self) -> None:
        """Called once, before the first message."""

    async def on_stop(self) -> None:
        """Called once when the actor stops normally (not when it crashed)."""

    async def send(self, message: M) -> None:
        """Queue ``message``, waiting while the mailbox is full."""
        try:
            await self._send.send(message)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ConversationStopped(f"actor {self.name!r} is stopped") from None

    def send_nowait(self, message: M) -> None:
        """Queue ``message`` or raise ``trio.WouldBlock`` when the mailbox is full."""
        try:
            self._send.send_nowait(message)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ConversationStopped(f"actor {self.name!r} is stopped") from None

    async def stop(self) -> None:
        """Handle what is queued, then stop; returns once stopped."""
        await self._send.aclose()
        await self._done.wait()

    async def wait_stopped(self) -> None:
        """Until the actor stopped (normally or by crashing)."""
        await self._done.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The actor's life: start, handle messages until stopped, stop. A crash in ``handle``
        is logged and ends this actor only; a failing ``on_start`` raises to the spawner."""
        started = False
        failure: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await self.on_start()
                task_status.started()
                started = True
                async with self._receive:
                    async for message in self._receive:
                        await self.handle(message)
                await self.on_stop()
                nursery.cancel_scope.cancel()
        except Exception as exc:
            # trio wraps what the body raised in an ExceptionGroup: keep (and raise) the
            # exception itself when it is the only one, so ``error`` is what ``handle`` raised
            # and a spawner can catch what ``on_start`` raised by its own type.
            failure = sole_exception(exc)
            self.error = failure
            if started:
                log.error("actor %s crashed", self.name, exc_info=failure)
        finally:
            self._send.close()
            self._done.set()
        if failure is not None and not started:
            raise failure
