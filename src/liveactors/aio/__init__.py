"""liveactors for asyncio (FastAPI, Starlette, aiohttp...): the orchestrator as a trio guest run.

::

    from liveactors import aio

    async with aio.open_orchestrator(liveactors.GeminiBackend()) as orch:  # on a running loop
        conv = await orch.spawn(config)
        async with conv.subscribe() as events:
            await conv.send_text("Hello")
            async for event in events: ...
        reply = await conv.ask("And again?")

:func:`open_orchestrator` starts trio as a *guest* of the running asyncio loop
(``trio.lowlevel.start_guest_run``): the trio orchestrator, its conversations and their sockets
run on the loop's own thread, interleaved with asyncio's callbacks, for exactly as long as the
``async with`` (in a web app: its lifespan). Every method of :class:`Orchestrator`,
:class:`ConversationRef` and :class:`Subscription` is the trio one, awaited from asyncio:

* the same arguments, the same values (:class:`~liveactors.Reply`, the events of
  :mod:`liveactors.events`) and the same :class:`~liveactors.LiveError` exceptions; never a
  trio exception;
* cancelling the asyncio task that awaits one cancels it on the trio side, and the
  ``CancelledError`` propagates once the trio side has stopped;
* ``subscribe()`` is an async context manager yielding an async iterator, fed from a trio
  subscription whose ``buffer`` and ``overflow`` work as in trio, plus a handoff of at most
  :data:`HANDOFF` events; leaving the ``async with`` (or ``aclose()``) unsubscribes.

:class:`FakeBackend` runs the embedded fake Live API server inside the same guest run (it is
trio code too). ``Orchestrator.run_trio`` runs any other trio code there. One guest run per
loop: a second ``open_orchestrator`` on the same loop raises
:class:`~liveactors.InvalidCommand` while the first is open. See ``docs/asyncio.md``.
"""

from ._conversation import ConversationRef
from ._orchestrator import FakeBackend, Orchestrator, open_orchestrator
from ._subscription import HANDOFF, Subscription

__all__ = [
    "HANDOFF",
    "ConversationRef",
    "FakeBackend",
    "Orchestrator",
    "Subscription",
    "open_orchestrator",
]
