"""The orchestrator for asyncio: ``open_orchestrator`` runs the trio one in a guest run."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from .. import _conversation, _orchestrator
from .. import events as ev
from .._actor import Actor
from .._backend_api import Backend
from .._bus import Overflow
from .._conversation import Conversation
from .._counters import OrchestratorStatistics
from .._errors import InvalidCommand, LiveError
from .._handles import HANDLE_VALIDITY, HandleStore
from .._protocol.setup import ConfigLike
from .._restart import RestartPolicy
from ._conversation import ConversationRef
from ._guest import Guest
from ._subscription import SubscribeContext, Subscription

if TYPE_CHECKING:
    from ..testing import FakeServer

__all__ = ["FakeBackend", "Orchestrator", "open_orchestrator"]

T = TypeVar("T")


def _shut_down(what: str) -> InvalidCommand:
    return InvalidCommand(f"{what}: the aio orchestrator has shut down")


class FakeBackend:
    """The embedded fake Live API server as the backend of an aio orchestrator.

    ``liveactors.testing.open_fake_server`` runs on trio, so under asyncio it must run in the
    orchestrator's guest run: ``aio.open_orchestrator(aio.FakeBackend(**options))`` opens the
    server first (``options`` are those of ``open_fake_server``, checked here), points the
    orchestrator at it (``server.backend(model=model)``, or ``server.vertex_backend(model=model)``
    with ``vertex=True``), and closes it after the orchestrator. ``server`` is the running
    :class:`~liveactors.testing.FakeServer` (None before), kept after the block for its log.
    """

    def __init__(self, *, model: str | None = None, **options: Any) -> None:
        from ..testing import ServerOptions

        ServerOptions(**options)  # unknown or bad options fail here, not in the guest run
        self.model = model
        self.options = options
        self.server: FakeServer | None = None

    def __repr__(self) -> str:
        return f"<aio.FakeBackend model={self.model!r} running={self.server is not None}>"

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[Backend]:
        from ..testing import open_fake_server

        async with open_fake_server(**self.options) as server:
            self.server = server
            if server.options.vertex:
                yield server.vertex_backend(model=self.model)
            else:
                yield server.backend(model=self.model)


class _Setup:
    """What the guest run opens: the fake server if asked, then the trio orchestrator."""

    def __init__(self, backend: Backend | FakeBackend, options: dict[str, Any]) -> None:
        self.backend = backend
        self.options = options
        #: The orchestrator's statistics as it closed (read after the run has ended).
        self.final: OrchestratorStatistics | None = None

    @asynccontextmanager
    async def open(self, scope: trio.CancelScope) -> AsyncIterator[_orchestrator.Orchestrator]:
        """The orchestrator runs in ``scope`` (cancelled: an immediate shutdown); the fake
        server outside it, so that it answers the closes of that shutdown."""
        if isinstance(self.backend, FakeBackend):
            async with self.backend._open() as backend:
                with scope:
                    async with self._orchestrator(backend) as orch:
                        yield orch
        else:
            with scope:
                async with self._orchestrator(self.backend) as orch:
                    yield orch

    @asynccontextmanager
    async def _orchestrator(self, backend: Backend) -> AsyncIterator[_orchestrator.Orchestrator]:
        orch: _orchestrator.Orchestrator | None = None
        try:
            async with _orchestrator.open_orchestrator(backend, **self.options) as orch:
                yield orch
        finally:
            if orch is not None:
                self.final = orch.statistics()


class Orchestrator:
    """The orchestrator for asyncio code (made by :func:`open_orchestrator`): the methods of
    :class:`liveactors.Orchestrator`, each run in the trio guest run."""

    def __init__(
        self, guest: Guest[_orchestrator.Orchestrator], orch: _orchestrator.Orchestrator
    ) -> None:
        self._guest = guest
        self._setup: _Setup | None = None
        #: The trio orchestrator behind this one (for trio code run with :meth:`run_trio`).
        self.trio = orch
        # One aio ref per trio ref (``get`` returns the one ``spawn`` did), by its id.
        self._refs: weakref.WeakValueDictionary[int, ConversationRef] = (
            weakref.WeakValueDictionary()
        )
        guest.at_exit.append(self._snapshot)

    def _ref(self, ref: _conversation.ConversationRef) -> ConversationRef:
        mine = self._refs.get(id(ref))
        if mine is None or mine.trio is not ref:
            mine = self._refs[id(ref)] = ConversationRef(self._guest, ref)
        return mine

    def _snapshot(self) -> None:
        for ref in list(self._refs.values()):
            ref._snapshot()

    def __repr__(self) -> str:
        state = "closing" if self.closing else "open"
        return f"<aio.Orchestrator {state} conversations={len(self.conversations)}>"

    @property
    def closing(self) -> bool:
        """Whether shutdown has begun (``spawn`` raises from then on)."""
        return self._guest.closed or self.trio.closing

    @property
    def fake_server(self) -> FakeServer | None:
        """The fake server of a :class:`FakeBackend` orchestrator (else None)."""
        backend = None if self._setup is None else self._setup.backend
        return backend.server if isinstance(backend, FakeBackend) else None

    # -- conversations ------------------------------------------------------------------------

    async def spawn(
        self,
        config: ConfigLike = None,
        *,
        name: str | None = None,
        actor: type[Conversation] | Callable[[], Conversation] | Conversation = Conversation,
        restart: RestartPolicy | None = None,
        admission_timeout: float | None = None,
    ) -> ConversationRef:
        """Start a conversation and return once its first connection is set up (see
        :meth:`liveactors.Orchestrator.spawn`; an ``actor``'s hooks run in trio)."""
        ref = await self._guest.call(
            partial(
                self.trio.spawn,
                config,
                name=name,
                actor=actor,
                restart=restart,
                admission_timeout=admission_timeout,
            ),
            partial(_shut_down, "spawn()"),
        )
        return self._ref(ref)

    def get(self, name: str) -> ConversationRef:
        """The running conversation called ``name`` (``KeyError`` if there is none)."""
        return self._ref(self.trio.get(name))

    @property
    def conversations(self) -> list[ConversationRef]:
        """The conversations running now (spawned, not yet ended), in spawn order."""
        if self._guest.closed:
            return []
        return [self._ref(ref) for ref in self.trio.conversations]

    async def stop(self, name: str, *, grace: float | None = None, forget: bool = False) -> None:
        """Stop the conversation ``name`` (see :meth:`liveactors.Orchestrator.stop`)."""
        await self._guest.call(
            partial(self.trio.stop, name, grace=grace, forget=forget),
            partial(_shut_down, "stop()"),
        )

    # -- events -------------------------------------------------------------------------------

    def subscribe(
        self,
        *event_types: type[ev.Event],
        conversation: str | ConversationRef | None = None,
        buffer: int = 256,
        overflow: Overflow = "block",
    ) -> SubscribeContext:
        """``async with orch.subscribe(...) as events: async for event in events``: events of
        every conversation (or of the ones named ``conversation``, following the name), as
        :meth:`liveactors.Orchestrator.subscribe`."""
        if isinstance(conversation, ConversationRef):
            conversation = conversation.name
        opener = partial(
            self.trio.subscribe,
            *event_types,
            conversation=conversation,
            buffer=buffer,
            overflow=overflow,
        )
        refusal = partial(_shut_down, "subscribe()")
        return SubscribeContext(Subscription(self._guest, opener, buffer, refusal))

    # -- custom actors ------------------------------------------------------------------------

    async def spawn_actor(self, actor: Actor[Any]) -> Actor[Any]:
        """Run a custom :class:`~liveactors.Actor` (trio code) in the orchestrator; returns
        once its ``on_start`` is done. Send it messages with
        ``await orch.run_trio(actor.send, message)``."""
        return await self._guest.call(
            partial(self.trio.spawn_actor, actor), partial(_shut_down, "spawn_actor()")
        )

    # -- handles, statistics, shutdown --------------------------------------------------------

    async def flush_handles(self) -> None:
        """Write every queued handle to the store now."""
        await self._guest.call(self.trio.flush_handles, partial(_shut_down, "flush_handles()"))

    def statistics(self) -> OrchestratorStatistics:
        """Counters over every conversation this orchestrator ran; once the block has ended,
        the last ones it had."""
        if self._guest.closed and self._setup is not None and self._setup.final is not None:
            return self._setup.final
        return self.trio.statistics()

    async def aclose(self, grace: float | None = None) -> None:
        """Graceful shutdown while the block still runs (see
        :meth:`liveactors.Orchestrator.aclose`); leaving the block does it too."""
        try:
            await self._guest.call(partial(self.trio.aclose, grace), partial(_shut_down, "aclose"))
        except InvalidCommand:
            if not self._guest.closed:
                raise

    # -- trio code ----------------------------------------------------------------------------

    async def run_trio(self, async_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Await ``async_fn(*args)`` in the guest run (trio code: custom actors, the fake
        server's ``await log.wait_for(...)``...) and return its value; cancelling the caller
        cancels it."""
        return await self._guest.call(partial(async_fn, *args), partial(_shut_down, "run_trio()"))

    async def run_trio_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Call ``fn(*args)`` in the guest run's trio context and return its value."""

        async def run() -> T:
            return fn(*args)

        return await self._guest.call(run, partial(_shut_down, "run_trio_sync()"))


class _OpenOrchestrator(AbstractAsyncContextManager[Orchestrator]):
    """``async with open_orchestrator(...)``: the guest run lives exactly as long."""

    def __init__(self, setup: _Setup) -> None:
        self._setup = setup
        self._guest: Guest[_orchestrator.Orchestrator] | None = None

    async def __aenter__(self) -> Orchestrator:
        if self._guest is not None:
            raise InvalidCommand("this open_orchestrator() was entered already")
        guest = self._guest = Guest(asyncio.get_running_loop(), self._setup.open)
        guest.start()
        try:
            orch = await guest.wait_ready()
        except BaseException:
            await guest.close(immediate=True)
            raise
        wrapper = Orchestrator(guest, orch)
        wrapper._setup = self._setup
        return wrapper

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        guest = self._guest
        assert guest is not None
        crashed = guest.crashed
        await guest.close(immediate=exc is not None or crashed)
        error = guest.error()
        if crashed:
            guest.uncancel_host()
            if error is None:
                error = LiveError("the liveactors guest run ended unexpectedly")
            if exc is None or isinstance(exc, asyncio.CancelledError):
                raise error
        if error is not None and error is not exc:
            if exc is None:
                raise error
            raise BaseExceptionGroup("the block and the guest run both failed", [exc, error])
        return False


def open_orchestrator(
    backend: Backend | FakeBackend,
    *,
    max_sessions: int | None = None,
    connect_rate: float | None = None,
    handle_store: HandleStore | None = None,
    restart: RestartPolicy | None = RestartPolicy(),
    grace: float = 5.0,
    handle_validity: float = HANDLE_VALIDITY,
    admission_timeout: float | None = None,
    connect_burst: float = 1.0,
    replay_window: float = 15.0,
) -> AbstractAsyncContextManager[Orchestrator]:
    """Run an orchestrator for asyncio code, as a trio guest run on the running loop, for the
    duration of the ``async with``. The options are :func:`liveactors.open_orchestrator`'s;
    ``backend`` may also be a :class:`FakeBackend`.

    Leaving the block normally shuts down gracefully; leaving it by an exception or a
    cancellation (or being cancelled during the graceful shutdown) is immediate; either way the
    guest run has ended when the block has. One per loop: a second one raises
    :class:`~liveactors.InvalidCommand` while the first is open."""
    options: dict[str, Any] = {
        "max_sessions": max_sessions,
        "connect_rate": connect_rate,
        "handle_store": handle_store,
        "restart": restart,
        "grace": grace,
        "handle_validity": handle_validity,
        "admission_timeout": admission_timeout,
        "connect_burst": connect_burst,
        "replay_window": replay_window,
    }
    return _OpenOrchestrator(_Setup(backend, options))
