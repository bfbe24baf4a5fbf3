"""The orchestrator: many conversations and actors under one nursery.

It keeps a registry by name, admits at most ``max_sessions`` live sessions (the service limits
them per project), spreads connects with a token bucket (reconnects included), persists
resumption handles, and shuts down gracefully: leaving ``async with open_orchestrator(...)``
stops accepting work, lets answers in progress finish within ``grace`` seconds, closes every
socket with 1000 and saves the handles. Cancelling it cancels everything, and no task outlives
it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from . import events as ev
from ._actor import Actor
from ._backend import GeminiBackend
from ._bus import Bus, Overflow, Subscription
from ._conversation import Conversation, ConversationRef, ConversationState
from ._errors import AdmissionTimeout, InvalidCommand
from ._groups import sole_exception
from ._handles import HANDLE_VALIDITY, HandleStore, MemoryHandleStore
from ._protocol.setup import ConfigLike
from ._ratelimit import TokenBucket
from ._restart import RestartPolicy
from ._supervisor import Supervisor

__all__ = ["Orchestrator", "OrchestratorStatistics", "open_orchestrator"]

log = logging.getLogger("liveactors.orchestrator")


@attrs.frozen
class OrchestratorStatistics:
    """A snapshot of the whole orchestrator."""

    #: Conversations alive now (any state but CLOSED/FAILED).
    conversations: int
    #: Highest number of simultaneously admitted sessions so far.
    peak_sessions: int
    max_sessions: int | None
    spawned: int
    closed: int
    failed: int
    #: Connects that went through the connect-rate limiter.
    connects: int
    reconnects: int
    handoffs: int
    messages_in: int
    messages_out: int
    actors: int
    subscribers: int


@attrs.define(eq=False)
class _Entry:
    #: None while the name is claimed but the conversation is still being admitted.
    supervisor: Supervisor | None
    scope: trio.CancelScope


class Orchestrator:
    """Runs conversations and actors; made by :func:`open_orchestrator`."""

    def __init__(
        self,
        nursery: trio.Nursery,
        backend: GeminiBackend,
        *,
        max_sessions: int | None,
        connect_rate: float | None,
        handle_store: HandleStore,
        restart: RestartPolicy,
        grace: float,
        handle_validity: float,
    ) -> None:
        if max_sessions is not None and (
            isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1
        ):
            raise InvalidCommand(f"max_sessions must be an int >= 1, not {max_sessions!r}")
        if not isinstance(restart, RestartPolicy):
            raise InvalidCommand(f"restart must be a RestartPolicy, not {type(restart).__name__}")
        self.backend = backend
        self.bus = Bus()
        self.max_sessions = max_sessions
        self.restart = restart
        self.grace = grace
        self.handle_store = handle_store
        self.handle_validity = handle_validity
        self._nursery = nursery
        self._slots = trio.Semaphore(max_sessions) if max_sessions else None
        self._bucket = TokenBucket(connect_rate) if connect_rate else None
        self._entries: dict[str, _Entry] = {}
        self._actors: dict[str, Actor[Any]] = {}
        self._closing = False
        self._counter = 0
        self._live = 0
        self._peak = 0
        self._spawned = 0
        self._closed = 0
        self._failed = 0
        self._connects = 0
        # Totals of conversations that already ended, so statistics() keeps counting them.
        self._ended = {"reconnects": 0, "handoffs": 0, "messages_in": 0, "messages_out": 0}
        self._pending_handles: dict[str, str] = {}
        self._handles_ready = trio.Event()

    def __repr__(self) -> str:
        return f"<Orchestrator {len(self._entries)} conversations>"

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
        """Start a conversation and return once its first connection is set up.

        Waits for a free session slot when ``max_sessions`` are live (``admission_timeout``
        seconds at most, then :class:`~liveactors.AdmissionTimeout`). A ``name`` already in use
        is an error; a name whose handle is stored (and younger than its validity) resumes
        that session.
        """
        if self._closing:
            raise InvalidCommand("the orchestrator is shutting down; no new conversations")
        if name is None:
            self._counter += 1
            name = f"conversation-{self._counter}"
            while name in self._entries:
                self._counter += 1
                name = f"conversation-{self._counter}"
        elif not isinstance(name, str) or not name:
            raise InvalidCommand(f"name must be a non-empty str, not {name!r}")
        if name in self._entries:
            raise InvalidCommand(f"a conversation named {name!r} is already running")
        instance = _instantiate(actor)
        policy = restart or self.restart
        # Claim the name now so a concurrent spawn of the same name fails fast.
        placeholder = _Entry(None, trio.CancelScope())
        self._entries[name] = placeholder
        try:
            await self._admit(admission_timeout)
        except BaseException:
            del self._entries[name]
            raise
        try:
            stored = await self.handle_store.load(name)
            handle = None
            if stored is not None and stored.age() < self.handle_validity:
                handle = stored.handle
            supervisor = Supervisor(
                name=name,
                backend=self.backend,
                config=config,
                actor=instance,
                bus=self.bus,
                restart=policy,
                gate=self._gate,
                initial_handle=handle,
                on_handle=functools.partial(self._remember_handle, name),
            )
            placeholder.supervisor = supervisor
            await self._nursery.start(self._run, placeholder)
        except BaseException:
            self._entries.pop(name, None)
            self._release()
            raise
        self._spawned += 1
        return supervisor.ref

    async def _admit(self, patience: float | None) -> None:
        if self._slots is not None:
            if patience is None:
                await self._slots.acquire()
            else:
                with trio.move_on_after(patience) as waited:
                    await self._slots.acquire()
                if waited.cancelled_caught:
                    raise AdmissionTimeout(
                        f"no session slot free within {patience:g}s "
                        f"(max_sessions={self.max_sessions})"
                    )
        else:
            await trio.lowlevel.checkpoint()
        self._live += 1
        self._peak = max(self._peak, self._live)

    def _release(self) -> None:
        self._live -= 1
        if self._slots is not None:
            self._slots.release()

    async def _gate(self) -> None:
        if self._bucket is not None:
            await self._bucket.acquire()
        self._connects += 1

    async def _run(self, entry: _Entry, *, task_status: trio.TaskStatus[None]) -> None:
        supervisor = entry.supervisor
        assert supervisor is not None
        try:
            with entry.scope:
                await supervisor.run(task_status=task_status)
        finally:
            self._entries.pop(supervisor.name, None)
            self._release()
            for key in self._ended:
                self._ended[key] += getattr(supervisor, key)
            if supervisor.state is ConversationState.FAILED:
                self._failed += 1
            elif supervisor._started:
                self._closed += 1

    def get(self, name: str) -> ConversationRef:
        """The running conversation called ``name`` (KeyError if there is none)."""
        entry = self._entries.get(name)
        if entry is None or entry.supervisor is None:
            raise KeyError(f"no conversation named {name!r}")
        return entry.supervisor.ref

    @property
    def conversations(self) -> list[ConversationRef]:
        """The conversations running now."""
        return [e.supervisor.ref for e in self._entries.values() if e.supervisor is not None]

    async def stop(self, name: str, *, grace: float | None = None, forget: bool = False) -> None:
        """Stop the conversation ``name`` gracefully; ``forget`` also deletes its stored handle."""
        ref = self.get(name)
        await ref.stop(grace=self.grace if grace is None else grace)
        if forget:
            self._pending_handles.pop(name, None)
            await self.handle_store.delete(name)

    # -- events -------------------------------------------------------------------------------

    @asynccontextmanager
    async def subscribe(
        self,
        *event_types: type[ev.Event],
        conversation: str | None = None,
        buffer: int = 256,
        overflow: Overflow = "block",
    ) -> AsyncIterator[Subscription]:
        """Events of every conversation (or of ``conversation``), optionally only
        ``event_types``, from now until the ``async with`` ends."""
        sub = self.bus.subscribe(
            event_types, conversation=conversation, buffer=buffer, overflow=overflow
        )
        try:
            yield sub
        finally:
            self.bus.unsubscribe(sub)

    # -- custom actors ------------------------------------------------------------------------

    async def spawn_actor(self, actor: Actor[Any]) -> Actor[Any]:
        """Run a custom :class:`~liveactors.Actor` in the orchestrator's nursery."""
        if self._closing:
            raise InvalidCommand("the orchestrator is shutting down; no new actors")
        if not isinstance(actor, Actor):
            raise InvalidCommand(f"spawn_actor takes an Actor, not {type(actor).__name__}")
        if actor.name in self._actors:
            raise InvalidCommand(f"an actor named {actor.name!r} is already running")
        self._actors[actor.name] = actor
        try:
            await self._nursery.start(self._run_actor, actor)
        except BaseException:
            self._actors.pop(actor.name, None)
            raise
        return actor

    async def _run_actor(self, actor: Actor[Any], *, task_status: trio.TaskStatus[None]) -> None:
        try:
            await actor.run(task_status=task_status)
        finally:
            self._actors.pop(actor.name, None)

    # -- handles ------------------------------------------------------------------------------

    def _remember_handle(self, name: str, handle: str) -> None:
        self._pending_handles[name] = handle
        self._handles_ready.set()

    async def _persist_handles(self) -> None:
        """Write handles behind the conversations' backs, coalescing bursts per name."""
        while True:
            await self._handles_ready.wait()
            self._handles_ready = trio.Event()
            await self._flush_handles()

    async def _flush_handles(self) -> None:
        while self._pending_handles:
            name, handle = self._pending_handles.popitem()
            try:
                await self.handle_store.save(name, handle)
            except Exception:
                log.exception("could not save the resumption handle of %s", name)

    # -- statistics and shutdown --------------------------------------------------------------

    def statistics(self) -> OrchestratorStatistics:
        """Counters over every conversation this orchestrator ran."""
        sups = [e.supervisor for e in self._entries.values() if e.supervisor is not None]
        totals = dict(self._ended)
        for sup in sups:
            for key in totals:
                totals[key] += getattr(sup, key)
        return OrchestratorStatistics(
            conversations=len(sups),
            peak_sessions=self._peak,
            max_sessions=self.max_sessions,
            spawned=self._spawned,
            closed=self._closed,
            failed=self._failed,
            connects=self._connects,
            reconnects=totals["reconnects"],
            handoffs=totals["handoffs"],
            messages_in=totals["messages_in"],
            messages_out=totals["messages_out"],
            actors=len(self._actors),
            subscribers=len(self.bus._everywhere)
            + sum(len(s) for s in self.bus._by_conversation.values()),
        )

    async def aclose(self, grace: float | None = None) -> None:
        """Graceful shutdown: no new work, answers in progress may finish within ``grace``
        seconds, then every conversation is closed (1000) and actors are stopped."""
        self._closing = True
        grace = self.grace if grace is None else grace
        deadline = trio.current_time() + grace
        async with trio.open_nursery() as nursery:
            for entry in list(self._entries.values()):
                if entry.supervisor is not None:
                    nursery.start_soon(self._stop_one, entry, deadline)
            for actor in list(self._actors.values()):
                nursery.start_soon(actor.stop)
        await self._flush_handles()

    async def _stop_one(self, entry: _Entry, deadline: float) -> None:
        assert entry.supervisor is not None
        with trio.move_on_at(deadline + 1.0):
            await entry.supervisor.stop(max(0.0, deadline - trio.current_time()))
        # Past the grace period: cancel; the transport still closes with 1000 on the way out.
        entry.scope.cancel()


def _instantiate(
    actor: type[Conversation] | Callable[[], Conversation] | Conversation,
) -> Conversation:
    if isinstance(actor, Conversation):
        return actor
    if isinstance(actor, type) and not issubclass(actor, Conversation):
        raise InvalidCommand(f"actor must be a Conversation subclass, not {actor.__name__}")
    instance = actor()
    if not isinstance(instance, Conversation):
        raise InvalidCommand(
            f"actor factory must return a Conversation, not {type(instance).__name__}"
        )
    return instance


@asynccontextmanager
async def open_orchestrator(
    backend: GeminiBackend,
    *,
    max_sessions: int | None = None,
    connect_rate: float | None = None,
    handle_store: HandleStore | None = None,
    restart: RestartPolicy | None = None,
    grace: float = 5.0,
    handle_validity: float = HANDLE_VALIDITY,
) -> AsyncIterator[Orchestrator]:
    """Run conversations under one nursery; leaving the block shuts them down gracefully.

    ``max_sessions`` caps live sessions (``spawn`` waits for a slot), ``connect_rate`` limits
    connects per second (reconnects too), ``handle_store`` persists resumption handles
    (in memory by default), ``restart`` is the default :class:`RestartPolicy`, ``grace`` is how
    long answers in progress may take to finish at shutdown.
    """
    if not isinstance(backend, GeminiBackend):
        raise InvalidCommand(f"backend must be a GeminiBackend, not {type(backend).__name__}")
    try:
        async with trio.open_nursery() as nursery:
            orch = Orchestrator(
                nursery,
                backend,
                max_sessions=max_sessions,
                connect_rate=connect_rate,
                handle_store=handle_store or MemoryHandleStore(),
                restart=restart or RestartPolicy(),
                grace=grace,
                handle_validity=handle_validity,
            )
            nursery.start_soon(orch._persist_handles)
            try:
                yield orch
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(grace + 5.0):
                    await orch.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # Conversations never raise into this nursery; a group here wraps what the body of the
        # ``async with`` raised. Hand that back as itself, not wrapped.
        sole = sole_exception(group)
        if sole is group:
            raise
        raise sole from None
