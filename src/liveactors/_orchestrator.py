"""The orchestrator: many conversations and actors under one nursery.

Theory of operation. :func:`open_orchestrator` owns one nursery; every conversation runs in a
task of it (with its own nursery inside, see ``_supervisor.py``), and so does every custom actor
and the task that writes resumption handles to the :class:`~liveactors.HandleStore`.

* **Registry.** A name is claimed synchronously when ``spawn`` starts, before anything waits, so
  two concurrent spawns of one name cannot both win: the second raises
  :class:`~liveactors.InvalidCommand`. The name is freed when the conversation ends, or at once
  when its spawn fails. Only conversations whose spawn returned are listed (``get``,
  ``conversations``).
* **Admission.** ``max_sessions`` is a FIFO semaphore of session slots. ``spawn`` takes a slot
  (waiting at most ``admission_timeout``, then :class:`~liveactors.AdmissionTimeout`) before the
  first connect; the conversation holds it across reconnects, and gives it back when it ends,
  however it ends (stopped, failed, cancelled, or rejected on its first connect). So the number of
  open sockets never exceeds ``max_sessions``.
* **Connect rate.** Every connect of every conversation — first connects, reconnects after a
  drop, GoAway handoffs — first takes a token from one bucket (``connect_rate`` per second, at
  most ``connect_burst`` saved up; 1 by default, so connects are evenly spaced): a mass drop
  reconnects at the rate, not all at once.
* **Handles.** Each resumable handle a conversation receives is queued for the store; one writer
  task saves the queue in batches (a burst of handles of one name costs one write). When a
  conversation ends, its last handle is saved once more, stamped with the end time: the service
  counts a handle's validity from the session's end. ``spawn(name=...)`` resumes from the stored
  handle of ``name`` while it is younger than ``handle_validity``; a handle the service refuses
  starts a fresh session.
* **Shutdown.** Leaving the ``async with`` normally is graceful: ``spawn`` and ``spawn_actor``
  raise from then on (spawns waiting for a slot too); conversations still connecting are
  cancelled; each connected conversation sends what it had accepted, lets the answer in progress
  finish, and closes with 1000 — all within ``grace`` seconds, after which whatever is left is
  cancelled; actors stop within what remains; handles are saved. Leaving by an exception
  (``Cancelled`` included: the enclosing scope was cancelled), or a cancellation arriving during
  the graceful shutdown, is immediate: everything is cancelled at once. Even then every socket is
  closed with 1000 (the transport's close is shielded and bounded by its close timeout), and the
  handles are saved (shielded, bounded by ``_FLUSH_TIMEOUT``).
"""

from __future__ import annotations

import gc
import logging
import math
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final, cast

import attrs
import trio

from . import events as ev
from ._actor import Actor
from ._backend_api import Backend
from ._bus import Bus, Overflow, Subscription
from ._conversation import Conversation, ConversationRef, ConversationState
from ._errors import AdmissionTimeout, InvalidCommand
from ._groups import sole_exception
from ._handles import HANDLE_VALIDITY, HandleStore, MemoryHandleStore
from ._protocol.setup import ConfigLike
from ._ratelimit import TokenBucket
from ._restart import RestartPolicy
from ._session_config import session_setup
from ._supervisor import Supervisor

__all__ = ["Orchestrator", "OrchestratorStatistics", "open_orchestrator"]

log = logging.getLogger("liveactors.orchestrator")

#: From this many conversations in one orchestrator, Python's default GC settings cost real
#: latency (docs/scaling.md); said once per process, at INFO, since the settings are the
#: application's.
GC_HINT_AT: Final = 1000
_gc_hinted = False


def _hint_gc_once(conversations: int) -> None:
    global _gc_hinted
    if _gc_hinted or gc.get_threshold()[0] >= 10_000:
        return
    _gc_hinted = True
    log.info(
        "%d conversations with Python's default garbage-collector threshold: its pauses grow "
        "with them (over a second at 10,000); see docs/scaling.md (gc.freeze, gc.set_threshold)",
        conversations,
    )


#: Longest the final save of handles may take once the orchestrator is being cancelled.
_FLUSH_TIMEOUT: Final = 5.0

_SHUTTING_DOWN = "the orchestrator is shutting down: {what} accepts no new work"


@attrs.frozen
class OrchestratorStatistics:
    """A snapshot of the whole orchestrator (``orch.statistics()``).

    Counters of messages, reconnects, handoffs, tokens and turns sum over every conversation this
    orchestrator ran, the ones that ended included.
    """

    #: Conversations running now (spawned, not yet closed or failed).
    conversations: int
    #: Highest number of session slots held at once so far (never above ``max_sessions``).
    peak_sessions: int
    max_sessions: int | None
    #: Conversations whose ``spawn`` returned.
    spawned: int
    #: Conversations that ended normally (stopped, or shut down with the orchestrator).
    closed: int
    #: Conversations that failed after their spawn returned.
    failed: int
    #: Connect attempts (first connects, reconnects and handoffs) through the rate limiter.
    connects: int
    reconnects: int
    handoffs: int
    messages_in: int
    messages_out: int
    actors: int
    #: Open subscriptions (per conversation and orchestrator-wide).
    subscribers: int
    #: Session slots held now: running conversations plus spawns past admission.
    sessions: int = 0
    #: Spawns waiting for a session slot now.
    waiting: int = 0
    #: Spawns that failed (first connect refused, cancelled, shut down, timed out...).
    rejected: int = 0
    #: Sum of ``totalTokenCount`` over every usage report.
    tokens: int = 0
    #: Model turns completed.
    turns: int = 0
    #: Whether shutdown has begun.
    closing: bool = False
    #: Retries after the service's concurrency limit refused a connect (not in ``reconnects``).
    busy_retries: int = 0


#: Counters summed over supervisors: the live ones at snapshot time plus the ones that ended.
_TOTALS: Final = (
    "reconnects",
    "handoffs",
    "messages_in",
    "messages_out",
    "tokens",
    "busy_retries",
)


@attrs.define(eq=False)
class _Entry:
    """One name in the registry, from ``spawn`` until the conversation ended."""

    name: str
    supervisor: Supervisor | None = None
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    #: Waiting for a slot: cancelled when shutdown begins.
    admission: trio.CancelScope | None = None
    holds_slot: bool = False
    #: The first connection is up (``spawn`` returns / returned).
    started: bool = False
    #: The conversation task has begun (it, not ``spawn``, cleans up from then on).
    running: bool = False
    ended: bool = False
    #: Set once the conversation's task is over (name, slot and counters settled).
    done: trio.Event = attrs.Factory(trio.Event)
    last_handle: str | None = attrs.field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        """The conversation closed or failed (its task may still be winding up)."""
        return self.ended or (self.supervisor is not None and self.supervisor.finished)

    @property
    def live(self) -> bool:
        """Spawned, and not closed or failed yet."""
        return self.started and not self.finished


class _StartedFlag:
    """The ``task_status`` handed to a supervisor: notes in the entry that it started."""

    def __init__(self, entry: _Entry, inner: trio.TaskStatus[None]) -> None:
        self._entry = entry
        self._inner = inner

    def started(self, value: None = None) -> None:
        self._entry.started = True
        self._inner.started()


class Orchestrator:
    """Runs conversations and actors; made by :func:`open_orchestrator` (see the module
    docstring for how admission, connect rate, handles and shutdown work)."""

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
    ) -> None:
        if max_sessions is not None and (
            isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1
        ):
            raise InvalidCommand(f"max_sessions must be an int >= 1 or None, not {max_sessions!r}")
        restart = RestartPolicy() if restart is None else restart
        if not isinstance(restart, RestartPolicy):
            raise InvalidCommand(f"restart must be a RestartPolicy, not {type(restart).__name__}")
        _check_duration("grace", grace)
        _check_duration("handle_validity", handle_validity)
        if admission_timeout is not None:
            _check_duration("admission_timeout", admission_timeout)
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
        self._nursery = nursery
        self._slots = trio.Semaphore(max_sessions) if max_sessions is not None else None
        self._bucket = (
            TokenBucket(connect_rate, burst=connect_burst) if connect_rate is not None else None
        )
        self._entries: dict[str, _Entry] = {}
        #: Entries whose conversation task runs (one that closed may have left ``_entries``
        #: to a new conversation of its name while its task winds up).
        self._running: set[_Entry] = set()
        self._actors: dict[str, tuple[Actor[Any], trio.CancelScope]] = {}
        self._subscriptions: set[Subscription] = set()
        self._closing = False
        self._counter = 0
        # Counters (see OrchestratorStatistics).
        self._sessions = 0
        self._peak = 0
        self._waiting = 0
        self._spawned = 0
        self._rejected = 0
        self._closed = 0
        self._failed = 0
        self._connects = 0
        self._turns_ended = 0
        self._ended = dict.fromkeys(_TOTALS, 0)
        # Handles waiting to be written: name -> handle, or None to delete the name.
        self._pending_handles: dict[str, str | None] = {}
        self._handles_queued = trio.Event()
        self._store_lock = trio.Lock()

    def __repr__(self) -> str:
        state = "closing" if self._closing else "open"
        return f"<Orchestrator {state} conversations={len(self.conversations)}>"

    @property
    def closing(self) -> bool:
        """Whether shutdown has begun (``spawn`` raises from then on)."""
        return self._closing

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
        self._refuse_if_closing("spawn()")
        if restart is not None and not isinstance(restart, RestartPolicy):
            raise InvalidCommand(f"restart must be a RestartPolicy, not {type(restart).__name__}")
        if admission_timeout is None:
            admission_timeout = self.admission_timeout
        else:
            _check_duration("admission_timeout", admission_timeout)
        # Every config error (InvalidConfig: a field the model refuses) is raised here, before
        # a slot is taken or a socket opened.
        session = session_setup(config, self.backend)
        instance = _instantiate(actor)
        entry = self._claim(name)
        try:
            await self._admit(entry, admission_timeout)
            handle = await self._stored_handle(entry.name)
            self._refuse_if_closing("spawn()")
            entry.supervisor = Supervisor(
                name=entry.name,
                backend=self.backend,
                session=session,
                actor=instance,
                bus=self.bus,
                restart=restart or self.restart,
                gate=self._gate,
                initial_handle=handle,
                on_handle=lambda h: self._remember_handle(entry, h),
            )
            try:
                await self._nursery.start(self._run, entry)
            except RuntimeError:
                if self._closing and not entry.started:
                    # Shutdown cancelled the first connect before it was set up.
                    raise InvalidCommand(_SHUTTING_DOWN.format(what="spawn()")) from None
                raise
        except BaseException:
            if not entry.running:
                self._forget(entry)
                self._rejected += 1
            raise
        self._spawned += 1
        return entry.supervisor.ref

    def _claim(self, name: str | None) -> _Entry:
        """Reserve ``name`` (or a fresh one) synchronously: concurrent spawns cannot race."""
        if name is None:
            while True:
                self._counter += 1
                name = f"conversation-{self._counter}"
                if name not in self._entries:
                    break
        elif not isinstance(name, str) or not name:
            raise InvalidCommand(f"name must be a non-empty str, not {name!r}")
        elif name in self._entries and not self._entries[name].finished:
            # (A conversation that closed or failed frees its name at once, even while its
            # task still winds up: ``await conv.stop()`` then a spawn of the name just works.)
            what = "is already running" if self._entries[name].started else "is being spawned"
            raise InvalidCommand(
                f"a conversation named {name!r} {what}; pick another name or stop it first"
            )
        entry = self._entries[name] = _Entry(name)
        if len(self._entries) >= GC_HINT_AT:
            _hint_gc_once(len(self._entries))
        return entry

    async def _admit(self, entry: _Entry, patience: float | None) -> None:
        if self._slots is None:
            await trio.lowlevel.checkpoint()
        else:
            self._waiting += 1
            try:
                with trio.CancelScope() as waiting:
                    entry.admission = waiting
                    if patience is not None:
                        waiting.deadline = trio.current_time() + patience
                    await self._slots.acquire()
            finally:
                self._waiting -= 1
                entry.admission = None
            if waiting.cancelled_caught:
                self._refuse_if_closing("spawn()")
                raise AdmissionTimeout(
                    f"no session slot became free within {patience:g}s for {entry.name!r}: "
                    f"all {self.max_sessions} (max_sessions) are taken and "
                    f"{self._waiting} other spawn(s) are waiting"
                )
        entry.holds_slot = True
        self._sessions += 1
        self._peak = max(self._peak, self._sessions)

    def _release(self, entry: _Entry) -> None:
        """Give back ``entry``'s slot (once)."""
        if entry.holds_slot:
            entry.holds_slot = False
            self._sessions -= 1
            if self._slots is not None:
                self._slots.release()

    def _forget(self, entry: _Entry) -> None:
        """``entry`` is over: free its name (if it is still its own) and its slot."""
        if self._entries.get(entry.name) is entry:
            del self._entries[entry.name]
        self._release(entry)

    async def _stored_handle(self, name: str) -> str | None:
        stored = await self.handle_store.load(name)
        if stored is None:
            return None
        age = stored.age()
        if age >= self.handle_validity:
            log.info(
                "%s: stored handle is %.0fs old (validity %.0fs); starting fresh",
                name,
                age,
                self.handle_validity,
            )
            return None
        return stored.handle

    async def _gate(self) -> None:
        """Awaited by every conversation before every connect."""
        if self._bucket is not None:
            await self._bucket.acquire()
        self._connects += 1

    async def _run(self, entry: _Entry, *, task_status: trio.TaskStatus[None]) -> None:
        entry.running = True
        self._running.add(entry)
        supervisor = entry.supervisor
        assert supervisor is not None
        try:
            with entry.scope:
                await supervisor.run(
                    task_status=cast(trio.TaskStatus[None], _StartedFlag(entry, task_status))
                )
        finally:
            self._ended_conversation(entry, supervisor)

    def _ended_conversation(self, entry: _Entry, supervisor: Supervisor) -> None:
        entry.ended = True
        entry.done.set()
        self._running.discard(entry)
        self._forget(entry)
        for key in _TOTALS:
            self._ended[key] += getattr(supervisor, key)
        self._turns_ended += supervisor.tracker.turns_completed
        if not entry.started:
            self._rejected += 1
        elif supervisor.state is ConversationState.FAILED:
            self._failed += 1
        else:
            self._closed += 1
        if entry.last_handle is not None:
            # Saved again now: the service counts validity from the end of the session.
            self._queue_handle(entry.name, entry.last_handle)

    def get(self, name: str) -> ConversationRef:
        """The running conversation called ``name`` (``KeyError`` if there is none)."""
        entry = self._entries.get(name)
        if entry is None or entry.supervisor is None or not entry.live:
            raise KeyError(f"no conversation named {name!r} is running")
        return entry.supervisor.ref

    @property
    def conversations(self) -> list[ConversationRef]:
        """The conversations running now (spawned, not yet ended), in spawn order."""
        return [e.supervisor.ref for e in self._entries.values() if e.supervisor and e.live]

    async def stop(self, name: str, *, grace: float | None = None, forget: bool = False) -> None:
        """Stop the conversation ``name``: what it accepted is sent, the answer in progress may
        finish within ``grace`` seconds (default: the orchestrator's), then it closes with 1000.
        Returns once it ended. ``forget=True`` also deletes its stored handle (so spawning the
        name again starts a fresh session); that works for a name that is not running, too."""
        entry = self._entries.get(name)
        if entry is None or entry.supervisor is None or not entry.live:
            if forget:
                await self._forget_handle(name)
                return
            raise KeyError(f"no conversation named {name!r} is running")
        grace = self.grace if grace is None else grace
        _check_duration("grace", grace)
        await self._stop_one(entry, trio.current_time() + grace)
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
        """Events of every conversation (or only of the one named ``conversation``), optionally
        only of ``event_types``, from now until the ``async with`` ends or the orchestrator shuts
        down (then the iteration ends after the buffered events)."""
        if isinstance(conversation, ConversationRef):
            conversation = conversation.name
        sub = self.bus.subscribe(
            event_types, conversation=conversation, buffer=buffer, overflow=overflow
        )
        if self._closing and not self._entries:
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
        self._refuse_if_closing("spawn_actor()")
        if not isinstance(actor, Actor):
            raise InvalidCommand(f"spawn_actor takes an Actor, not {type(actor).__name__}")
        if actor.name in self._actors:
            raise InvalidCommand(f"an actor named {actor.name!r} is already running")
        scope = trio.CancelScope()
        self._actors[actor.name] = (actor, scope)
        try:
            await self._nursery.start(self._run_actor, actor, scope)
        except BaseException:
            if self._actors.get(actor.name, (None,))[0] is actor:
                del self._actors[actor.name]
            raise
        return actor

    async def _run_actor(
        self, actor: Actor[Any], scope: trio.CancelScope, *, task_status: trio.TaskStatus[None]
    ) -> None:
        try:
            with scope:
                await actor.run(task_status=task_status)
        finally:
            if self._actors.get(actor.name, (None,))[0] is actor:
                del self._actors[actor.name]

    # -- handles ------------------------------------------------------------------------------

    def _remember_handle(self, entry: _Entry, handle: str) -> None:
        entry.last_handle = handle
        self._queue_handle(entry.name, handle)

    def _queue_handle(self, name: str, handle: str | None) -> None:
        self._pending_handles[name] = handle
        self._handles_queued.set()

    async def _forget_handle(self, name: str) -> None:
        self._queue_handle(name, None)
        await self.flush_handles()

    async def _write_handles(self) -> None:
        """The writer task: saves queued handles in batches, behind the conversations' backs."""
        while True:
            await self._handles_queued.wait()
            self._handles_queued = trio.Event()
            await self.flush_handles()

    async def flush_handles(self) -> None:
        """Write every queued handle to the store now (one batch; deletions too)."""
        async with self._store_lock:
            while self._pending_handles:
                batch, self._pending_handles = self._pending_handles, {}
                saves = {name: h for name, h in batch.items() if h is not None}
                deletes = [name for name, h in batch.items() if h is None]
                try:
                    await _save_all(self.handle_store, saves)
                    for name in deletes:
                        await self.handle_store.delete(name)
                except Exception:
                    log.exception("could not save %d resumption handle(s)", len(batch))

    # -- statistics ---------------------------------------------------------------------------

    def statistics(self) -> OrchestratorStatistics:
        """Counters over every conversation this orchestrator ran (see
        :class:`OrchestratorStatistics`)."""
        running = [e.supervisor for e in self._running if e.supervisor is not None]
        totals = dict(self._ended)
        turns = self._turns_ended
        for sup in running:
            for key in _TOTALS:
                totals[key] += getattr(sup, key)
            turns += sup.tracker.turns_completed
        return OrchestratorStatistics(
            conversations=len(self.conversations),
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
            subscribers=sum(1 for _ in self._all_subscriptions()),
            sessions=self._sessions,
            waiting=self._waiting,
            rejected=self._rejected,
            tokens=totals["tokens"],
            turns=turns,
            closing=self._closing,
            busy_retries=totals["busy_retries"],
        )

    def _all_subscriptions(self) -> list[Subscription]:
        subs = list(self.bus._everywhere)
        for group in self.bus._by_conversation.values():
            subs.extend(group)
        return subs

    # -- shutdown -----------------------------------------------------------------------------

    def _refuse_if_closing(self, what: str) -> None:
        if self._closing:
            raise InvalidCommand(_SHUTTING_DOWN.format(what=what))

    def _begin_closing(self) -> None:
        """No new work from now on: refuse spawns, wake the ones waiting for a slot, cancel
        the ones still connecting."""
        self._closing = True
        for entry in list(self._entries.values()):
            if entry.admission is not None:
                entry.admission.cancel()
            if not entry.started:
                entry.scope.cancel()

    async def aclose(self, grace: float | None = None) -> None:
        """Graceful shutdown (what leaving the ``async with`` normally does; call it yourself,
        from a signal handler say, to shut down while the block still runs).

        No new work; conversations still connecting are cancelled; connected ones send what they
        accepted and let the answer in progress finish, all within ``grace`` seconds (default:
        the orchestrator's), then close with 1000; actors stop within what is left; handles are
        saved. A cancellation meanwhile makes it immediate.
        """
        grace = self.grace if grace is None else grace
        _check_duration("grace", grace)
        deadline = trio.current_time() + grace
        self._begin_closing()
        async with trio.open_nursery() as nursery:
            for entry in list(self._entries.values()):
                if entry.started and not entry.ended:
                    nursery.start_soon(self._stop_one, entry, deadline)
        async with trio.open_nursery() as nursery:
            for actor, scope in list(self._actors.values()):
                nursery.start_soon(self._stop_actor, actor, scope, deadline)
        for sub in list(self._subscriptions):
            self.bus.unsubscribe(sub)
        await self.flush_handles()

    async def _stop_one(self, entry: _Entry, deadline: float) -> None:
        """Stop one conversation by ``deadline``: gracefully if it is connected or has a
        question in flight, else (reconnecting, nothing in progress) at once."""
        supervisor = entry.supervisor
        assert supervisor is not None
        if supervisor.state is ConversationState.READY or supervisor.ledger.outstanding:
            with trio.move_on_at(deadline):
                # The supervisor sends what was accepted, lets the answer finish, waits a moment
                # for the handle covering it, and closes (1000) at the deadline at the latest;
                # this scope only catches one that cannot get there (reconnecting).
                await supervisor.stop(max(0.0, deadline - trio.current_time()))
        # Not connected and nothing in progress, or past the grace: cancel. A socket still open
        # is closed with 1000 on the way out.
        entry.scope.cancel()
        await entry.done.wait()

    async def _stop_actor(
        self, actor: Actor[Any], scope: trio.CancelScope, deadline: float
    ) -> None:
        with trio.move_on_at(deadline):
            await actor.stop()
        scope.cancel()
        await actor.wait_stopped()

    async def _final_flush(self) -> None:
        """Save what is still queued even when cancelled (bounded)."""
        with trio.CancelScope(shield=True), trio.move_on_after(_FLUSH_TIMEOUT):
            await self.flush_handles()


async def _save_all(store: HandleStore, handles: Mapping[str, str]) -> None:
    """Save ``handles``: in one batch when the store can (``save_many``), else one by one."""
    if not handles:
        return
    save_many = getattr(store, "save_many", None)
    if save_many is not None:
        await save_many(handles)
        return
    for name, handle in handles.items():
        await store.save(name, handle)


def _check_duration(what: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or value < 0
    ):
        raise InvalidCommand(f"{what} must be a number of seconds >= 0, not {value!r}")


def _instantiate(
    actor: type[Conversation] | Callable[[], Conversation] | Conversation,
) -> Conversation:
    if isinstance(actor, Conversation):
        return actor
    if isinstance(actor, type) and not issubclass(actor, Conversation):
        raise InvalidCommand(f"actor must be a Conversation subclass, not {actor.__name__}")
    if not callable(actor):
        raise InvalidCommand(
            f"actor must be a Conversation subclass, instance or factory, not {actor!r}"
        )
    instance = actor()
    if not isinstance(instance, Conversation):
        raise InvalidCommand(
            f"actor factory must return a Conversation, not {type(instance).__name__}"
        )
    return instance


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
    * ``grace``: how long answers in progress may take to finish at shutdown.

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
                )
                nursery.start_soon(orch._write_handles)
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
                for sub in list(orch._subscriptions):
                    orch.bus.unsubscribe(sub)
                await orch._final_flush()
    except BaseExceptionGroup as group:
        # Conversations never raise into this nursery; a group here wraps what the body of the
        # ``async with`` raised. Hand that back as itself, not wrapped.
        sole = sole_exception(group)
        if sole is group:
            raise
        raise sole from None
