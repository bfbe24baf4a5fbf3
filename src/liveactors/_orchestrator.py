"""The orchestrator: many conversations and actors under one nursery.

Theory of operation. :func:`open_orchestrator` owns one nursery; every conversation runs in a
task of it (with its own nursery inside, see ``_supervisor.py``), and so does every custom actor
(``_custom_actors.py``) and the task that writes resumption handles. The orchestrator wires
together parts that each have a module:

* ``_registry.py``: names, claimed synchronously when ``spawn`` starts (two spawns of one name
  cannot both win) and freed when the conversation ends.
* ``_admission.py``: session slots (``max_sessions``), taken before the first connect and held
  until the conversation ends, and the connect bucket every connect passes through.
* ``_handle_writer.py``: handles written in batches, retried while the store is down. A
  conversation's last handle is saved again when it ends (the service counts validity from the
  session's end); ``spawn(name=...)`` resumes from the newest handle of ``name`` while it is
  younger than ``handle_validity``; a handle the service refuses starts a fresh session.
* ``_counters.py``: ``statistics()``, summed over the conversations field by field.
* ``_observe.py``: what ``liveactors.metrics`` reads at scrape time (every open orchestrator is
  in its weak set, and a closed one's final counters are kept) and the tracing seam of
  ``liveactors.otel``.

``subscribe(conversation=name)`` follows the *name*: it sees the conversation running under it
and every one spawned under it later (``seq`` starts over with each, after the previous one's
``ConversationClosed``), until the ``async with`` ends or the orchestrator shuts down. A
conversation's own ``conv.subscribe()`` ends with that conversation.

Shutdown. Leaving the ``async with`` normally is graceful: ``spawn`` and ``spawn_actor`` raise
from then on (spawns waiting for a slot too); conversations still connecting are cancelled; each
connected one sends what it had accepted, lets the answer in progress finish, and closes with
1000 — all within ``grace`` seconds, then whatever is left is cancelled; actors stop within what
remains. Leaving by an exception (``Cancelled`` included), or a cancellation arriving during the
graceful shutdown, is immediate: everything is cancelled at once. Either way every socket closes
with 1000 (the transport's close is shielded and bounded), and the queued handles are written
(shielded; a store that is down is retried for at most ``_FLUSH_TIMEOUT`` seconds).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Final, cast

import trio

from . import _observe
from . import events as ev
from ._actor import Actor
from ._admission import Admission
from ._arguments import check_duration, check_restart, instantiate
from ._backend_api import Backend
from ._bus import Bus, Overflow, Subscription
from ._conversation import Conversation, ConversationRef, ConversationState
from ._counters import Counters, OrchestratorStatistics
from ._custom_actors import CustomActors
from ._errors import InvalidCommand
from ._exception_groups import sole_exception
from ._handle_writer import HandleWriter
from ._handles import HANDLE_VALIDITY, HandleStore, MemoryHandleStore
from ._mailbox import Alarm
from ._protocol.setup import ConfigLike
from ._registry import Entry, Registry, StartedFlag
from ._restart import RestartPolicy
from ._session_config import session_setup
from ._supervisor import Supervisor, SupervisorHooks

__all__ = ["Orchestrator", "OrchestratorStatistics", "open_orchestrator"]

log = logging.getLogger("liveactors.orchestrator")

#: Longest the final save of handles may take (retrying a store that is down) at shutdown.
_FLUSH_TIMEOUT: Final = 5.0


class Orchestrator:
    """Runs conversations and actors; made by :func:`open_orchestrator` (see the module
    docstring for how names, admission, handles and shutdown work)."""

    def __init__(
        self,
        nursery: trio.Nursery,
        backend: Backend,
        *,
        max_sessions: int | None = None,
        connect_rate: float | None = None,
        connect_burst: float = 1.0,
        handle_store: HandleStore | None = None,
        restart: RestartPolicy | None = None,
        grace: float = 5.0,
        handle_validity: float = HANDLE_VALIDITY,
        admission_timeout: float | None = None,
        replay_window: float = 15.0,
    ) -> None:
        admission = Admission(max_sessions, connect_rate, connect_burst)
        restart = RestartPolicy() if restart is None else restart
        check_restart(restart)
        check_duration("grace", grace)
        check_duration("handle_validity", handle_validity)
        check_duration("replay_window", replay_window)
        if admission_timeout is not None:
            check_duration("admission_timeout", admission_timeout)
        self.backend = backend
        self.bus = Bus()
        self.max_sessions = max_sessions
        self.restart = restart
        self.grace = float(grace)
        self.handle_store: HandleStore = (
            MemoryHandleStore() if handle_store is None else handle_store
        )
        self.handle_validity = float(handle_validity)
        self.admission_timeout = admission_timeout
        self.replay_window = replay_window
        self._nursery = nursery
        self._admission = admission
        self._registry = Registry()
        self._handles = HandleWriter(self.handle_store)
        self._counters = Counters()
        self._actors = CustomActors(nursery)
        self._subscriptions: set[Subscription] = set()
        #: Observability counters beyond the statistics, read by liveactors.metrics.
        self._telemetry = _observe.Telemetry()
        #: Pokes the conversations' mailboxes at their deadlines (runs in the nursery).
        self._alarm = Alarm()

    def __repr__(self) -> str:
        state = "closing" if self.closing else "open"
        return f"<Orchestrator {state} conversations={len(self.conversations)}>"

    @property
    def closing(self) -> bool:
        """Whether shutdown has begun (``spawn`` raises from then on)."""
        return self._admission.closed

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

        ``name`` must not be in use (:class:`~liveactors.InvalidCommand`); without one, a fresh
        ``conversation-N`` is picked. A name whose handle is stored and younger than
        ``handle_validity`` resumes that session. Waits for a free session slot while
        ``max_sessions`` are taken — at most ``admission_timeout`` seconds (default: the
        orchestrator's), then :class:`~liveactors.AdmissionTimeout`. If the first connection
        cannot be set up (:class:`~liveactors.SessionRejected`, or
        :class:`~liveactors.ConnectionLost` once the restart policy gives up), that error is
        raised here and the name and the slot are free again.
        """
        return await self._spawn(config, name, actor, restart, admission_timeout, None)

    async def _spawn(
        self,
        config: ConfigLike,
        name: str | None,
        actor: type[Conversation] | Callable[[], Conversation] | Conversation,
        restart: RestartPolicy | None,
        admission_timeout: float | None,
        hooks: SupervisorHooks | None,
    ) -> ConversationRef:
        """``spawn``, with ``hooks`` for a cluster worker (see :class:`SupervisorHooks`)."""
        self._admission.check_open("spawn()")
        if restart is not None:
            check_restart(restart)
        if admission_timeout is None:
            admission_timeout = self.admission_timeout
        else:
            check_duration("admission_timeout", admission_timeout)
        # Every config error (InvalidConfig: a field the model refuses) is raised here, before
        # a slot is taken or a socket opened.
        session = session_setup(config, self.backend)
        instance = instantiate(actor)
        entry = self._registry.claim(name)
        try:
            entry.slot = await self._admission.admit(entry.name, admission_timeout)
            if hooks is not None:
                handle = None
            else:
                handle = await self._handles.resumable(entry.name, self.handle_validity)
            self._admission.check_open("spawn()")
            entry.supervisor = Supervisor(
                name=entry.name,
                backend=self.backend,
                session=session,
                actor=instance,
                bus=self.bus,
                restart=restart or self.restart,
                gate=self._admission.gate,
                initial_handle=handle,
                on_handle=lambda h: self._remember_handle(entry, h),
                replay_window=self.replay_window,
                journal=None if hooks is None else hooks.journal,
                may_send=None if hooks is None else hooks.may_send,
                telemetry=self._telemetry,
                alarm=self._alarm,
            )
            if hooks is not None:
                hooks.prepare(entry.supervisor)
            try:
                await self._nursery.start(self._run, entry)
            except RuntimeError:
                if self.closing and not entry.started:
                    # Shutdown cancelled the first connect before it was set up.
                    raise self._admission.refusal("spawn()") from None
                raise
        except BaseException:
            if not entry.running:
                self._registry.free(entry)
                self._counters.rejected += 1
            raise
        self._counters.spawned += 1
        return entry.supervisor.ref

    async def _run(self, entry: Entry, *, task_status: trio.TaskStatus[None]) -> None:
        entry.running = True
        self._registry.running.add(entry)
        supervisor = entry.supervisor
        assert supervisor is not None
        try:
            with entry.scope:
                await supervisor.run(
                    task_status=cast(trio.TaskStatus[None], StartedFlag(entry, task_status))
                )
        finally:
            self._ended_conversation(entry, supervisor)

    def _ended_conversation(self, entry: Entry, supervisor: Supervisor) -> None:
        entry.ended = True
        entry.done.set()
        self._registry.running.discard(entry)
        self._registry.free(entry)
        self._counters.conversation_ended(supervisor.statistics())
        self._telemetry.events_ended += supervisor.session.tracker.seq
        if not entry.started:
            self._counters.rejected += 1
        elif supervisor.state is ConversationState.FAILED:
            self._counters.failed += 1
        else:
            self._counters.closed += 1
        if entry.last_handle is not None:
            # Saved again now: the service counts validity from the end of the session.
            self._handles.save(entry.name, entry.last_handle)

    def _cancel(self, name: str) -> trio.Event | None:
        """End ``name`` at once, sending nothing more (a cluster worker lost its lease);
        returns the event set once it has ended and its name is free (None: not running)."""
        entry = self._registry.get(name)
        if entry is None:
            return None
        entry.scope.cancel()
        return entry.done

    def get(self, name: str) -> ConversationRef:
        """The running conversation called ``name`` (``KeyError`` if there is none)."""
        entry = self._registry.get(name)
        if entry is None or entry.supervisor is None:
            raise KeyError(f"no conversation named {name!r} is running")
        return entry.supervisor.ref

    @property
    def conversations(self) -> list[ConversationRef]:
        """The conversations running now (spawned, not yet ended), in spawn order."""
        return [e.supervisor.ref for e in self._registry.live() if e.supervisor is not None]

    async def stop(self, name: str, *, grace: float | None = None, forget: bool = False) -> None:
        """Stop the conversation ``name``: what it accepted is sent, the answer in progress may
        finish within ``grace`` seconds (default: the orchestrator's), then it closes with 1000.
        Returns once it ended. ``forget=True`` also deletes its stored handle (so spawning the
        name again starts a fresh session); that works for a name that is not running, too."""
        entry = self._registry.get(name)
        if entry is None:
            if forget:
                await self._forget_handle(name)
                return
            raise KeyError(f"no conversation named {name!r} is running")
        grace = self.grace if grace is None else grace
        check_duration("grace", grace)
        await entry.stop(trio.current_time() + grace)
        if forget:
            await self._forget_handle(name)

    # -- events -------------------------------------------------------------------------------

    @asynccontextmanager
    async def subscribe(
        self,
        *event_types: type[ev.Event],
        conversation: str | None = None,
        buffer: int = 256,
        overflow: Overflow = "block",
    ) -> AsyncIterator[Subscription]:
        """Events of every conversation (or only of the ones named ``conversation``),
        optionally only of ``event_types``, from now until the ``async with`` ends or the
        orchestrator shuts down (then the iteration ends after the buffered events).

        A subscription to a name follows it: when the conversation ends, the next one spawned
        under the same name is seen too (its ``seq`` starts over; the ``ConversationClosed``
        before its ``Connected`` marks the change)."""
        if isinstance(conversation, ConversationRef):
            conversation = conversation.name
        sub = self.bus.subscribe(
            event_types, conversation=conversation, buffer=buffer, overflow=overflow, follow=True
        )
        if self.closing and not len(self._registry):
            self.bus.unsubscribe(sub)
        self._subscriptions.add(sub)
        try:
            yield sub
        finally:
            self._subscriptions.discard(sub)
            self.bus.unsubscribe(sub)

    # -- custom actors ------------------------------------------------------------------------

    async def spawn_actor(self, actor: Actor[Any]) -> Actor[Any]:
        """Run a custom :class:`~liveactors.Actor` in the orchestrator's nursery; returns once
        its ``on_start`` is done. It is stopped at shutdown, after the conversations."""
        self._admission.check_open("spawn_actor()")
        return await self._actors.spawn(actor)

    # -- handles ------------------------------------------------------------------------------

    def _remember_handle(self, entry: Entry, handle: str) -> None:
        entry.last_handle = handle
        self._handles.save(entry.name, handle)

    async def _forget_handle(self, name: str) -> None:
        self._handles.delete(name)
        await self._handles.flush()

    async def flush_handles(self) -> None:
        """Write every queued handle to the store now (one batch; deletions too). If the store
        fails, the handles stay queued and the writer task retries them."""
        await self._handles.flush()

    # -- statistics ---------------------------------------------------------------------------

    def statistics(self) -> OrchestratorStatistics:
        """Counters over every conversation this orchestrator ran (see
        :class:`OrchestratorStatistics`)."""
        running = [e.supervisor for e in self._registry.running if e.supervisor is not None]
        admission = self._admission
        return self._counters.snapshot(
            self._counters.totals(sup.statistics() for sup in running),
            conversations=len(self.conversations),
            peak_sessions=admission.peak_sessions,
            max_sessions=self.max_sessions,
            connects=admission.connects,
            actors=len(self._actors),
            subscribers=self.bus.subscription_count(),
            sessions=admission.sessions,
            waiting=admission.waiting,
            closing=self.closing,
            handle_store_errors=self._handles.errors,
            handles_pending=self._handles.pending,
            handles_dropped=self._handles.dropped,
        )

    # -- shutdown -----------------------------------------------------------------------------

    def _begin_closing(self) -> None:
        """No new work from now on: refuse spawns, wake the ones waiting for a slot, cancel
        the ones still connecting."""
        self._admission.close()
        for entry in self._registry.entries():
            if not entry.started:
                entry.scope.cancel()

    def _end_subscriptions(self) -> None:
        for sub in list(self._subscriptions):
            self.bus.unsubscribe(sub)

    async def aclose(self, grace: float | None = None) -> None:
        """Graceful shutdown (what leaving the ``async with`` normally does; call it yourself,
        from a signal handler say, to shut down while the block still runs).

        No new work; conversations still connecting are cancelled; connected ones send what they
        accepted and let the answer in progress finish, all within ``grace`` seconds (default:
        the orchestrator's), then close with 1000; actors stop within what is left; handles are
        saved. A cancellation meanwhile makes it immediate.
        """
        grace = self.grace if grace is None else grace
        check_duration("grace", grace)
        deadline = trio.current_time() + grace
        self._begin_closing()
        async with trio.open_nursery() as nursery:
            for entry in self._registry.entries():
                if entry.started and not entry.ended:
                    nursery.start_soon(entry.stop, deadline)
        await self._actors.stop_all(deadline)
        self._end_subscriptions()
        await self._handles.flush()

    async def _final_flush(self) -> None:
        """Write what is still queued even when cancelled; a store that is down is retried
        for at most ``_FLUSH_TIMEOUT`` seconds."""
        with trio.CancelScope(shield=True):
            await self._handles.drain(_FLUSH_TIMEOUT)


@asynccontextmanager
async def open_orchestrator(
    backend: Backend,
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
) -> AsyncIterator[Orchestrator]:
    """Run conversations under one nursery; leaving the block shuts them down gracefully.

    * ``max_sessions``: most live sessions at once (``spawn`` waits for a slot, at most
      ``admission_timeout`` seconds).
    * ``connect_rate``: most connects per second, reconnects and handoffs included (a token
      bucket holding at most ``connect_burst`` tokens: by default connects are evenly spaced).
    * ``handle_store``: where resumption handles persist (in memory by default; a
      :class:`~liveactors.SQLiteHandleStore` survives restarts); a stored handle younger than
      ``handle_validity`` seconds (2 h, the service's) is resumed by ``spawn`` of its name.
    * ``restart``: the default :class:`~liveactors.RestartPolicy` of conversations.
    * ``grace``: how long answers in progress may take to finish at shutdown; input it cannot
      deliver is handed back (:class:`~liveactors.events.InputUndelivered`).
    * ``replay_window``: after a reconnect, realtime audio and video older than this many
      seconds is not sent again (text and content always are); what is left
      out is counted (``replay_trimmed``) and announced (:class:`~liveactors.events.ReplayTrimmed`).

    Leaving the block normally is graceful; leaving it by an exception or a cancellation (or a
    cancellation during the graceful shutdown) is immediate. Either way every socket closes with
    1000, the handles are saved, and no task is left.
    """
    if not isinstance(backend, Backend):
        raise InvalidCommand(
            f"backend must be a GeminiBackend or a VertexBackend, not {type(backend).__name__}"
        )
    orch: Orchestrator | None = None
    try:
        try:
            async with trio.open_nursery() as nursery:
                orch = Orchestrator(
                    nursery,
                    backend,
                    max_sessions=max_sessions,
                    connect_rate=connect_rate,
                    connect_burst=connect_burst,
                    handle_store=handle_store,
                    restart=restart,
                    grace=grace,
                    handle_validity=handle_validity,
                    admission_timeout=admission_timeout,
                    replay_window=replay_window,
                )
                nursery.start_soon(orch._handles.run)
                nursery.start_soon(orch._alarm.run)
                _observe.opened(orch)
                try:
                    yield orch
                except BaseException:
                    # Left by an exception or a cancellation: immediate shutdown.
                    orch._begin_closing()
                    raise
                else:
                    await orch.aclose()
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            if orch is not None:
                orch._begin_closing()
                orch._end_subscriptions()
                try:
                    await orch._final_flush()
                finally:
                    _observe.closed(orch)  # scrapes keep its final counters
    except BaseExceptionGroup as group:
        # Conversations never raise into this nursery; a group here wraps what the body of the
        # ``async with`` raised. Hand that back as itself, not wrapped.
        sole = sole_exception(group)
        if sole is group:
            raise
        raise sole from None
