"""Custom actors (:class:`~liveactors.Actor`) run by an orchestrator: each in a task of the
orchestrator's nursery, under a cancel scope of its own; stopped at shutdown, after the
conversations, within what is left of the grace period."""

from __future__ import annotations

from typing import Any

import trio

from ._actor import Actor
from ._errors import InvalidCommand

__all__ = ["CustomActors"]


class CustomActors:
    """The running custom actors of one orchestrator, by name."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._running: dict[str, tuple[Actor[Any], trio.CancelScope]] = {}

    def __len__(self) -> int:
        return len(self._running)

    async def spawn(self, actor: Actor[Any]) -> Actor[Any]:
        """Run ``actor``; returns once its ``on_start`` is done. Its name must be free."""
        if not isinstance(actor, Actor):
            raise InvalidCommand(f"spawn_actor takes an Actor, not {type(actor).__name__}")
        if actor.name in self._running:
            raise InvalidCommand(f"an actor named {actor.name!r} is already running")
        scope = trio.CancelScope()
        self._running[actor.name] = (actor, scope)
        try:
            await self._nursery.start(self._run, actor, scope)
        except BaseException:
            self._forget(actor)
            raise
        return actor

    async def _run(
        self, actor: Actor[Any], scope: trio.CancelScope, *, task_status: trio.TaskStatus[None]
    ) -> None:
        try:
            with scope:
                await actor.run(task_status=task_status)
        finally:
            self._forget(actor)

    def _forget(self, actor: Actor[Any]) -> None:
        """Free ``actor``'s name, unless another actor of that name holds it now."""
        if self._running.get(actor.name, (None,))[0] is actor:
            del self._running[actor.name]

    async def stop_all(self, deadline: float) -> None:
        """Ask every actor to stop by ``deadline``; cancel the ones still running then."""
        async with trio.open_nursery() as nursery:
            for actor, scope in list(self._running.values()):
                nursery.start_soon(_stop, actor, scope, deadline)


async def _stop(actor: Actor[Any], scope: trio.CancelScope, deadline: float) -> None:
    with trio.move_on_at(deadline):
        await actor.stop()
    scope.cancel()
    await actor.wait_stopped()
