"""The supervisor: one conversation's connections, from first connect to final close.

Theory of operation. A conversation runs in one nursery that it owns. Inside it the supervisor
loops over connections; each connection runs a *reader* (frames -> events -> subscribers, hooks,
tool calls) and a *writer* (mailbox -> frames). Tool calls run in tasks of the conversation's
nursery, so they survive a reconnect and answer on whichever connection is current.

The connection ends in one of three ways:

* **stop**: the writer reached a stop command: close with 1000; the conversation ends.
* **handoff** after ``goAway``: new input is held in the mailbox, in order; tool results still
  go out. Once the current turn reached a resumable point (the ledger says every question was
  answered and covered, no blocking call pending) — or the time left is nearly over — the old
  socket is closed (the service refuses a resume while it is open) and a new connection resumes
  with the latest handle. A handoff is planned and never counts as a restart.
* **failure**: a retryable close (1000/1006/1011/1013, EOF, bad frame) reconnects with backoff
  under the :class:`~liveactors.RestartPolicy`; ``HandleExpired`` starts a fresh session that
  restores the transcript; any other ``SessionRejected`` fails the conversation.

On every new connection the :class:`~liveactors._protocol.ledger.InputLedger` plans what to
send before new input, so nothing acknowledged is lost and nothing answered is asked twice.
"""

from __future__ import annotations

import copy
import enum
import logging
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any, Final

import attrs
import trio
from google.genai import types

from . import events as ev
from ._backend_api import Backend
from ._bus import Bus
from ._conversation import (
    Conversation,
    ConversationRef,
    ConversationState,
    ConversationStatistics,
)
from ._errors import (
    ConnectionLost,
    ConversationStopped,
    HandleExpired,
    InvalidCommand,
    LiveError,
    ProtocolError,
    ServiceBusy,
    SessionRejected,
)
from ._keepalive import Keepalive
from ._mailbox import Mailbox
from ._protocol import encode
from ._protocol.connection import ConnectionState, LiveConnection
from ._protocol.events import EventTracker, TurnPhase
from ._protocol.ledger import HandleMode, InputLedger
from ._reply import ReplyBuilder
from ._restart import RestartBudget, RestartPolicy
from ._session_config import SessionSetup, manual_vad
from ._tools import ToolRunner, non_blocking_functions
from ._transport import Link

__all__ = ["ConnectGate", "Supervisor"]

log = logging.getLogger("liveactors.supervisor")

#: Awaited before every connect (admission control and connect-rate limiting).
ConnectGate = Callable[[], Awaitable[None]]

#: Switch this long before a goAway's deadline (capped at a quarter of it) when only a late
#: handle is missing.
_HANDOFF_MARGIN: Final = 1.0

#: How long past a goAway's deadline to wait for a service that does not close.
_GOAWAY_SLACK: Final = 5.0

#: How long a stop waits for the handle that covers the last answer.
_COVER_WAIT: Final = 0.25

#: After a goAway, how long a connection at a resumable point waits for its covering handle.
_IDLE_HANDLE_WAIT: Final = 1.0

#: How long on_event may take over the last events of a cancelled conversation.
_FINAL_HOOK_TIME: Final = 1.0


class _Outcome(enum.Enum):
    STOP = "stop"
    HANDOFF = "handoff"


@attrs.frozen
class _Send:
    message: dict[str, Any] = attrs.field(repr=False)
    reply: ReplyBuilder | None = None


@attrs.frozen
class _ToolResult:
    responses: tuple[types.FunctionResponse, ...]


@attrs.frozen
class _Stop:
    grace: float


_Command = _Send | _ToolResult | _Stop


class Supervisor:
    """Runs one conversation (see the module docstring)."""

    def __init__(
        self,
        *,
        name: str,
        backend: Backend,
        session: SessionSetup,
        actor: Conversation,
        bus: Bus,
        restart: RestartPolicy,
        gate: ConnectGate | None = None,
        initial_handle: str | None = None,
        on_handle: Callable[[str], None] | None = None,
        mailbox_size: int = 256,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.name = name
        self.backend = backend
        self.config = session.config
        self.model = session.model
        self._setup = session.setup
        handle = session.handle
        self.actor = actor
        self.bus = bus
        self.policy = restart
        self._budget = RestartBudget(restart)
        self._gate = gate
        self._on_handle = on_handle
        self._rng = rng
        non_blocking = non_blocking_functions(
            self._setup, default=self.model is not None and self.model.non_blocking_default
        )
        self.tracker = EventTracker(name, non_blocking=non_blocking)
        self.tracker.handle = initial_handle or handle
        self.ledger = InputLedger()
        self.mailbox: Mailbox[_Command] = Mailbox(mailbox_size)
        self.manual_vad = manual_vad(self.config)
        history = self.config.history_config
        #: The config seeds history with clientContent before the conversation starts.
        self._initial_history = bool(history and history.initial_history_in_client_content)
        #: Still seeding: clientContent is history, not a question, until turnComplete.
        self._seeding = self._initial_history
        self.ref = ConversationRef(self)
        actor.ref = self.ref
        self.state = ConversationState.CONNECTING
        self.finished = False
        self._finished = trio.Event()
        self._started = False
        self._tools = ToolRunner(name, actor, non_blocking, self._tool_answered)
        self._on_event = type(actor).on_event is not Conversation.on_event
        self._on_turn = type(actor).on_turn_complete is not Conversation.on_turn_complete
        self._nursery: trio.Nursery | None = None
        self._holding = False
        #: When the current connection must end (past a goAway's deadline), else inf.
        self._deadline = math.inf
        #: When to switch after a goAway if no turn is in progress, else inf.
        self._switch_by = math.inf
        #: After a goAway: when to switch from a resumable point that no handle covers yet.
        self._idle_switch_at = math.inf
        #: The current connection made progress (a turn completed, or a covering handle came).
        self._progress_here = False
        self._draining = False
        #: When a requested stop must be over, whatever is still in flight.
        self._stop_at = math.inf
        #: While stopping: how long to wait for a handle covering the last answer.
        self._cover_until: float | None = None
        #: Scope of a delivery waiting for room in a ``block`` subscriber.
        self._delivery: trio.CancelScope | None = None
        self._conn_error: LiveError | None = None
        self._replies: dict[int, ReplyBuilder] = {}
        self._handle_time: float | None = None
        self.connections = 0
        self.reconnects = 0
        self.handoffs = 0
        self.messages_in = 0
        self.messages_out = 0
        self.tokens = 0
        self.busy_retries = 0

    def __repr__(self) -> str:
        return f"<Supervisor {self.name!r} {self.state.value}>"

    # -- commands from ConversationRef ------------------------------------------------------

    async def submit(self, message: dict[str, Any], reply: ReplyBuilder | None = None) -> None:
        """Queue one validated input message (refused once a stop is queued)."""
        await self.mailbox.put(_Send(message, reply))

    async def submit_tool_response(self, responses: list[types.FunctionResponse]) -> None:
        """Queue tool responses; every id must belong to a pending call."""
        await trio.lowlevel.checkpoint_if_cancelled()
        self.mailbox.check_urgent()
        pending = self.tracker.pending_calls
        for response in responses:
            if response.id not in pending:
                known = ", ".join(sorted(pending)) or "none"
                raise InvalidCommand(
                    f"no pending tool call with id {response.id!r} (pending: {known})"
                )
        self.mailbox.put_urgent(_ToolResult(tuple(responses)))
        await trio.lowlevel.cancel_shielded_checkpoint()

    def text_message(self, text: str, *, turn_complete: bool) -> dict[str, Any]:
        """The wire message for a user's text: ``clientContent``, or realtime text on a model
        that refuses ``clientContent`` once the session has started."""
        model = self.model
        if (
            turn_complete
            and model is not None
            and not model.client_content_mid_session
            and not self._seeding
        ):
            return encode.realtime_text(text)
        return encode.client_content(text, turn_complete=turn_complete)

    def require_manual_vad(self, what: str) -> None:
        """``activity_start``/``activity_end`` only mean something with manual VAD."""
        if not self.manual_vad:
            raise InvalidCommand(
                f"{what}() needs manual VAD: set realtime_input_config."
                "automatic_activity_detection.disabled=True in the config"
            )

    def require_automatic_vad(self, what: str) -> None:
        """``audio_stream_end`` only means something with automatic VAD."""
        if self.manual_vad:
            raise InvalidCommand(
                f"{what}() is for automatic VAD; with manual VAD use activity_end()"
            )

    async def stop(self, grace: float) -> None:
        """Queue a stop after everything already sent, then wait until closed. After ``grace``
        seconds the conversation closes whatever is still in flight (even mid-reconnect)."""
        if not self.finished and not self.mailbox.sealed:
            self._stop_at = min(self._stop_at, trio.current_time() + max(0.0, grace))
            name = self.name

            def stopping() -> LiveError:
                return ConversationStopped(f"conversation {name!r} is stopping")

            # Input already queued goes out first; input sent from now on is refused, rather
            # than accepted and then never sent.
            self.mailbox.seal(stopping, last=_Stop(max(0.0, grace)))
        await self._finished.wait()

    async def wait_finished(self) -> None:
        """Until the conversation is closed or failed."""
        await self._finished.wait()

    def statistics(self) -> ConversationStatistics:
        """A snapshot of the counters."""
        age = None if self._handle_time is None else trio.current_time() - self._handle_time
        subs = self.bus._by_conversation.get(self.name, ())
        return ConversationStatistics(
            name=self.name,
            state=self.state,
            connections=self.connections,
            reconnects=self.reconnects,
            handoffs=self.handoffs,
            messages_in=self.messages_in,
            messages_out=self.messages_out,
            tokens=self.tokens,
            turns=self.tracker.turns_completed,
            last_handle_age=age,
            mailbox=len(self.mailbox),
            subscribers=len(subs),
            events_dropped=self.bus.dropped(self.name),
            busy_retries=self.busy_retries,
        )

    # -- the supervision loop -----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the conversation until it is stopped, fails or is cancelled.

        Until the first connection is set up, a failure raises (so ``spawn`` sees it); after
        that it becomes a :class:`~liveactors.events.ConversationFailed` event.
        """
        outcome: LiveError | None = None
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                await self._supervise(task_status)
            except LiveError as exc:
                outcome = exc
            finally:
                nursery.cancel_scope.cancel()
                final = self._finish(outcome)
                if self._on_event:
                    # The last events reach on_event too, even when the conversation was
                    # cancelled; a hook gets a moment, not forever.
                    with trio.CancelScope(shield=True), trio.move_on_after(_FINAL_HOOK_TIME):
                        for event in final:
                            await self._hook(self.actor.on_event, event)
        if outcome is not None and not self._started:
            raise outcome

    async def _supervise(self, task_status: trio.TaskStatus[None]) -> None:
        while True:
            if self._started and trio.current_time() >= self._stop_at:
                return  # a stop's grace ran out between connections
            try:
                outcome = await self._connection(task_status)
            except HandleExpired as exc:
                log.info("%s: resumption handle refused; starting a fresh session", self.name)
                self.tracker.handle = None
                await self._recover(exc)
                continue
            except SessionRejected as exc:
                raise _with_setup(exc, self._setup) from None
            except ConnectionLost as exc:
                if self._holding or (exc.code == 1000 and self._progress_here):
                    # The service ended the connection it announced with goAway (its deadline
                    # passed mid-turn), or ended a connection that was making progress with a
                    # normal close (Vertex AI's 10-minute cut: 1000 "The operation was
                    # cancelled.", often without a goAway): a planned switch, not a failure.
                    # Everything it sent before closing was read; the ledger replays what it
                    # did not answer. (A 1000 before any progress is a failure: no hot loop.)
                    await self._handed_off()
                    continue
                await self._recover(exc)
                continue
            except ProtocolError as exc:
                await self._recover(exc)
                continue
            if outcome is _Outcome.STOP:
                if self._on_stop_hook():
                    await self._hook(self.actor.on_stop)
                return
            await self._handed_off()

    async def _handed_off(self) -> None:
        """A goAway handoff is done on the old connection; the next one resumes."""
        self.handoffs += 1
        self.state = ConversationState.RECONNECTING
        # The switch may have come mid-turn (the time left ran out first).
        await self._close_cut_turn()

    def _on_stop_hook(self) -> bool:
        return type(self.actor).on_stop is not Conversation.on_stop

    async def _close_cut_turn(self) -> None:
        """A connection ended mid-turn: end that turn for subscribers (Interrupted, then
        TurnComplete with reason CONNECTION_LOST) and forget its partial answer, which the
        next connection regenerates under a new turn number."""
        answering = self.ledger.answering()
        if answering is not None and answering.number in self._replies:
            self._replies[answering.number].reset()
        self.ledger.turn_lost()
        for event in self.tracker.connection_lost():
            await self._deliver(event)

    async def _recover(self, exc: LiveError) -> None:
        """After a failed connection: close the turn it cut, then back off (or give up)."""
        self.state = ConversationState.RECONNECTING
        await self._close_cut_turn()
        busy = isinstance(exc, ServiceBusy)
        delay: float | None
        if busy:
            # The service's concurrency limit: wait longer, and do not let a burst of these
            # use up the restart budget (a fleet refused at once must not fail at once).
            delay = self._budget.busy_delay(self._rng)
            if delay is None:
                log.warning("%s: the service's concurrency limit did not lift", self.name)
                raise exc
            self.busy_retries += 1
            log.info("%s: the service is at its concurrency limit; retrying", self.name)
        else:
            delay = self._budget.next_delay(trio.current_time(), self._rng)
            if delay is None:
                log.warning(
                    "%s: giving up after %d reconnect attempts",
                    self.name,
                    self.policy.max_restarts,
                )
                raise exc
            self.reconnects += 1
        assert delay is not None
        await self._deliver(
            self.tracker.emit(
                ev.Reconnecting,
                reason=str(exc),
                attempt=self._budget.busy if busy else self._budget.consecutive,
                delay=delay,
            )
        )
        with trio.move_on_at(self._stop_at):
            await trio.sleep(delay)

    async def _connection(self, task_status: trio.TaskStatus[None]) -> _Outcome:
        """One connection: connect, set up, replay, run until stop / handoff / failure."""
        self.ledger.new_connection()
        self._progress_here = False
        handle = self.tracker.handle
        plan = self.ledger.plan(
            have_handle=handle is not None,
            awaiting_tool=self.tracker.awaiting_tool,
            reseed=self._initial_history
            and self.model is not None
            and not self.model.resume_keeps_seed,
        )
        if not plan.resume:
            handle = None
        # Credentials first (a Vertex token refresh may take a moment): the gate's slot and
        # connect-rate token are then spent on a connect that goes out at once.
        await self.backend.prepare()
        if self._gate is not None:
            await self._gate()
        conn = LiveConnection(number=self.connections + 1)
        async with self.backend.transport.connect(self.backend.connect_request()) as link:
            await link.send(conn.send_setup(self._setup_with(handle)))
            self.messages_out += 1
            with trio.move_on_after(self.backend.setup_timeout) as waited:
                # Bare ``{}`` frames may come first (seen on the 3.x service): skip them.
                while conn.state is ConnectionState.SETUP_SENT:
                    frame = await link.receive()
                    self.messages_in += 1
                    conn.receive(frame)
            if waited.cancelled_caught:
                raise ConnectionLost(
                    f"no setupComplete within {self.backend.setup_timeout:g}s of sending setup"
                )
            self.connections += 1
            if handle is None or self.ledger.mode is not HandleMode.ONCE:
                # The service's state predates these calls: a regenerated turn asks again.
                self.tracker.pending_calls.clear()
                self.tracker.phase = TurnPhase.IDLE
            self.state = ConversationState.READY
            self._holding = False
            self._deadline = math.inf
            self._switch_by = math.inf
            self._idle_switch_at = math.inf
            self._cover_until = None
            await self._deliver(
                self.tracker.emit(
                    ev.Connected,
                    session_id=conn.session_id,
                    resumed=handle is not None,
                    connection=conn.number,
                )
            )
            if self._initial_history and not plan.resume and plan.history is not None:
                # A fresh session expects the initial history first: the restored transcript
                # is it, and its turnComplete ends it (without a model call).
                plan.history["clientContent"]["turnComplete"] = True
            for message in plan.messages:
                _, text = conn.send(message)
                self.messages_out += 1
                await link.send(text)
            if plan.history is not None and not plan.resume and self.connections > 1:
                turns = len(plan.history["clientContent"]["turns"])
                await self._deliver(self.tracker.emit(ev.HistoryRestored, turns=turns))
            if not self._started:
                self._started = True
                task_status.started()
                if type(self.actor).on_start is not Conversation.on_start:
                    await self._hook(self.actor.on_start)
            return await self._run_connection(link, conn)

    def _setup_with(self, handle: str | None) -> dict[str, Any]:
        if handle is None:
            return self._setup
        setup = copy.deepcopy(self._setup)
        setup["setup"].setdefault("sessionResumption", {})["handle"] = handle
        # Initial history seeds the start of a session; a resumed one has started, and would
        # otherwise take the next question for more history and not answer it.
        setup["setup"].pop("historyConfig", None)
        return setup

    async def _run_connection(self, link: Link, conn: LiveConnection) -> _Outcome:
        self._conn_error = None
        outcome = _Outcome.HANDOFF
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._reader, link, conn, nursery.cancel_scope)
            try:
                outcome = await self._writer(link, conn)
            except LiveError as exc:
                if self._conn_error is None:
                    self._conn_error = exc
            except BaseException:
                # The conversation itself is being cancelled: a delivery waiting for a slow
                # subscriber must not hold that up.
                if self._delivery is not None:
                    self._delivery.cancel()
                raise
            # Ending the connection (stop, handoff, failure) cancels the reader, but not in the
            # middle of handing an already-numbered event to a subscriber: that may finish
            # until the switch's own deadline (a subscriber that never reads cannot hold a
            # stop or a handoff beyond it).
            if self._delivery is not None:
                ending = self._stop_at if outcome is _Outcome.STOP else self._deadline
                if self._conn_error is not None:
                    ending = trio.current_time()
                self._delivery.deadline = ending
            nursery.cancel_scope.cancel()
        if self._conn_error is not None:
            raise self._conn_error
        return outcome

    # -- writer -------------------------------------------------------------------------------

    async def _writer(self, link: Link, conn: LiveConnection) -> _Outcome:
        mailbox = self.mailbox
        interval = self.backend.keepalive
        keepalive = None
        if interval is not None:
            keepalive = Keepalive(interval, self.backend.keepalive_timeout)
        while True:
            deadline = min(self._deadline, self._stop_at) if self._draining else self._deadline
            wake = deadline
            now = trio.current_time()
            if keepalive is not None:
                # Every pass, not only when idle: a writer kept busy by a steady producer must
                # notice a peer that stopped answering too (liveness is what is read, not sent).
                due = keepalive.due(link.last_received, link.reads)
                if now >= due:
                    if self._delivery is not None:
                        keepalive.excuse(now)  # the reader is held by a subscriber, not reading
                    else:
                        keepalive.act(now, link.reads)  # raises if a ping went unanswered
                        await link.ping()
                    continue
                wake = min(wake, due)
            if self._holding or self._draining:
                if self._switch_ready() or now >= deadline:
                    return _Outcome.STOP if self._draining else _Outcome.HANDOFF
                if self._holding and not self._draining:
                    if self._turn_in_progress():
                        self._idle_switch_at = math.inf
                    else:
                        # A resumable point, but no handle covers it yet. A goAway may leave
                        # minutes (300 s seen on 3.8) and new input is held meanwhile, so wait
                        # a moment for the handle, not for the deadline; then switch, and the
                        # ledger plans what the old handle lacks.
                        if self._idle_switch_at == math.inf:
                            self._idle_switch_at = now + _IDLE_HANDLE_WAIT
                        if now >= self._idle_switch_at or now >= self._switch_by:
                            return _Outcome.HANDOFF
                        wake = min(wake, self._idle_switch_at)
                    if now < self._switch_by:
                        wake = min(wake, self._switch_by)
            command = mailbox.take(include_input=not (self._holding or self._draining))
            if command is None:
                if self._cover_until is not None:
                    wake = min(wake, self._cover_until)
                with trio.move_on_at(wake):
                    await mailbox.wait()
                continue
            if type(command) is _Send:
                await self._send_input(link, conn, command)
            elif type(command) is _ToolResult:
                await self._send_tool_result(link, conn, command)
            elif type(command) is _Stop:
                self._draining = True

    def _turn_in_progress(self) -> bool:
        """The model is answering, or a question or a blocking call waits for an answer."""
        tracker = self.tracker
        return (
            tracker.phase is not TurnPhase.IDLE
            or tracker.awaiting_tool
            or tracker.model_busy
            or self.ledger.outstanding
        )

    def _switch_ready(self) -> bool:
        """Whether the connection can end now without losing or repeating anything."""
        tracker = self.tracker
        if tracker.phase is not TurnPhase.IDLE or tracker.awaiting_tool or tracker.model_busy:
            return False
        if self._draining:
            if self.ledger.outstanding:
                return False
            if self.ledger.handoff_ready:
                return True
            # Answered but not covered by a handle yet: a per-turn service sends one right
            # after the turn, so wait a moment for it (a saved handle then holds the last
            # answer); a service that sends none must not hold the stop for the whole grace.
            now = trio.current_time()
            if self._cover_until is None:
                self._cover_until = now + _COVER_WAIT
            return now >= self._cover_until
        return self.ledger.handoff_ready

    async def _send_input(self, link: Link, conn: LiveConnection, command: _Send) -> None:
        message = command.message
        index, text = conn.send(message)
        if self._seeding and "clientContent" in message:
            # Initial history: the service takes it without answering.
            self._seeding = not message["clientContent"].get("turnComplete")
            self.ledger.seeded(message)
            self.messages_out += 1
            await link.send(text)
            return
        self._seeding = False
        exchange = self.ledger.sent(message, index)
        if command.reply is not None and exchange is not None:
            self._replies[exchange.number] = command.reply
        self.messages_out += 1
        await link.send(text)

    async def _send_tool_result(
        self, link: Link, conn: LiveConnection, command: _ToolResult
    ) -> None:
        pending = self.tracker.pending_calls
        live = [r for r in command.responses if r.id in pending]
        if not live:
            log.debug("%s: dropped a tool result for calls no longer pending", self.name)
            return
        _, text = conn.send(encode.tool_response(live))
        # A response with willContinue (a NON_BLOCKING generator) leaves its call pending.
        self.tracker.tool_responded([r.id for r in live if r.id and not r.will_continue])
        self.messages_out += 1
        await link.send(text)
        if self._holding:
            self.mailbox.poke()

    # -- reader -------------------------------------------------------------------------------

    async def _reader(self, link: Link, conn: LiveConnection, scope: trio.CancelScope) -> None:
        tracker = self.tracker
        try:
            while True:
                frame = await link.receive()
                self.messages_in += 1
                frame_events = tracker.events(conn.receive(frame))
                for position, event in enumerate(frame_events):
                    try:
                        self._account(event)
                        await self._deliver(event, reader=True)
                        if type(event) is ev.TurnComplete and self._on_turn:
                            await self._hook(self.actor.on_turn_complete, event)
                    except BaseException:
                        # Cut mid-frame (a slow hook, a stop's grace running out): the rest of
                        # the frame is numbered already, so it still counts and reaches every
                        # subscriber, or seq would have a gap.
                        for rest in frame_events[position + 1 :]:
                            self._account(rest)
                            self.bus.publish_nowait(rest, force=True)
                        raise
                if self._holding or self._draining:
                    self.mailbox.poke()
        except LiveError as exc:
            if self._conn_error is None:
                self._conn_error = exc
            scope.cancel()

    async def _deliver(self, event: ev.Event, *, reader: bool = False) -> None:
        blocked = self.bus.publish_nowait(event)
        if blocked:
            if reader:
                # The event is numbered and accounted: it reaches every subscriber even when
                # the connection ends meanwhile (a stop or a handoff cancels the reader); only
                # a deadline or the conversation's own end cuts this wait (_run_connection),
                # and then the event goes into the buffer anyway, past its limit.
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
            await self._hook(self.actor.on_event, event)

    async def _hook(self, hook: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run a user hook; one that raises is logged and the conversation carries on."""
        try:
            await hook(*args)
        except Exception:
            log.exception("%s: %s raised", self.name, getattr(hook, "__name__", "a hook"))

    def _account(self, event: ev.Event) -> None:
        """Update the ledger, replies and tools for one event (before subscribers see it)."""
        kind = type(event)
        ledger = self.ledger
        if kind is ev.AudioChunk or kind is ev.ModelPart or kind is ev.VideoChunk:
            ledger.model_output()
        elif kind is ev.TextDelta or kind is ev.OutputTranscript:
            ledger.model_output(event.text)  # type: ignore[attr-defined]
        elif kind is ev.InputTranscript:
            if event.interim:  # type: ignore[attr-defined]
                return  # provisional: the final transcript replaces it
            ledger.input_transcript(event.text)  # type: ignore[attr-defined]
        elif kind is ev.ToolCall:
            ledger.model_output()
            self._feed(event)
            if self._nursery is not None:
                self._tools.start(self._nursery, event.calls)  # type: ignore[attr-defined]
            return
        elif kind is ev.ToolCallCancelled:
            self._tools.cancel(event.ids)  # type: ignore[attr-defined]
        elif kind is ev.Usage:
            self.tokens += event.metadata.total_token_count or 0  # type: ignore[attr-defined]
        elif kind is ev.TurnComplete:
            self._feed(event)
            exchange = ledger.turn_complete(
                calls_running=bool(self.tracker.pending_calls) or self.tracker.model_busy
            )
            if exchange is not None:
                builder = self._replies.pop(exchange.number, None)
                if builder is not None:
                    builder.complete(event.turn)
            self._budget.progress()
            self._progress_here = True
            self._tools.turn_done(interrupted=event.interrupted)  # type: ignore[attr-defined]
            return
        elif kind is ev.ResumptionUpdate:
            self._resumption(event)  # type: ignore[arg-type]
            return
        elif kind is ev.GoAway:
            ledger.go_away()
            self._begin_handoff(event.time_left)  # type: ignore[attr-defined]
            return
        self._feed(event)

    def _tool_answered(self, responses: tuple[types.FunctionResponse, ...]) -> None:
        self.mailbox.put_urgent(_ToolResult(responses))

    def _feed(self, event: ev.Event) -> None:
        if not self._replies:
            return
        exchange = self.ledger.answering()
        if exchange is not None:
            builder = self._replies.get(exchange.number)
            if builder is not None:
                builder.feed(event)

    def _resumption(self, event: ev.ResumptionUpdate) -> None:
        resumable = event.resumable and bool(event.handle)
        self.ledger.resumption_update(resumable=resumable)
        if resumable and event.last_consumed_client_message_index is not None:
            # Only a usable handle holds what the index says was consumed.
            self.ledger.consumed_index(event.last_consumed_client_message_index)
        if resumable:
            if not self.ledger.outstanding:
                # A handle is progress only when no question waits for an answer: otherwise a
                # service that hands out a handle at setup and then always drops mid-answer
                # would reset the budget forever instead of failing the conversation.
                self._budget.progress()
                self._progress_here = True
            self._handle_time = trio.current_time()
            if self._on_handle is not None and event.handle:
                self._on_handle(event.handle)

    def _begin_handoff(self, time_left: float) -> None:
        """goAway: hold new input. Switch as soon as nothing is lost by it; otherwise let the
        turn run: if it cannot finish in time, the service closes the connection at its
        deadline, after everything it sent (which is read, so no answer is asked twice); only
        a service that never closes is left after a grace of its own."""
        now = trio.current_time()
        margin = min(_HANDOFF_MARGIN, time_left / 4)
        self._holding = True
        self._switch_by = min(self._switch_by, now + max(0.0, time_left - margin))
        self._deadline = min(self._deadline, now + time_left + _GOAWAY_SLACK)
        self.mailbox.poke()

    # -- the end ------------------------------------------------------------------------------

    def _finish(self, outcome: LiveError | None) -> list[ev.Event]:
        """Record the end: refuse commands, fail waiting asks, publish the last events (which
        it returns)."""
        if self.finished:
            return []
        self.finished = True
        if outcome is None:
            self.state = ConversationState.CLOSED
            name = self.name

            def error() -> LiveError:
                return ConversationStopped(f"conversation {name!r} is closed")

        else:
            self.state = ConversationState.FAILED
            error = _refusal(self.name, outcome)
        self.mailbox.close(error)
        for builder in self._replies.values():
            builder.fail(error())
        self._replies.clear()
        final: list[ev.Event] = []
        if outcome is not None and self._started:
            final.append(self.tracker.emit(ev.ConversationFailed, error=outcome))
        final.append(self.tracker.emit(ev.ConversationClosed))
        for event in final:
            self.bus.publish_nowait(event, force=True)
        self.bus.end_conversation(self.name)
        self._finished.set()
        return final


def _with_setup(exc: SessionRejected, setup: dict[str, Any]) -> SessionRejected:
    """``exc`` saying which model and which setup fields were sent, so a 1007/1008 the library
    could not foresee still points at the field (values are left out: they may be private)."""
    if exc.code not in (1007, 1008):
        return exc
    body = setup.get("setup", {})
    fields = []
    for key, value in body.items():
        if key == "model":
            continue
        if key == "generationConfig" and isinstance(value, dict):
            for sub, item in value.items():
                shown = f"={item}" if sub == "responseModalities" else ""
                fields.append(f"generationConfig.{sub}{shown}")
        else:
            fields.append(key)
    message = (
        f"{exc} (sent model {body.get('model', '?')!r} with {', '.join(fields) or 'no fields'})"
    )
    clone = type(exc)(message, exc.close)
    return clone


def _refusal(name: str, outcome: LiveError) -> Callable[[], LiveError]:
    """What further commands raise after the conversation failed with ``outcome``."""
    if isinstance(outcome, SessionRejected):
        cls = type(outcome)
        message, close = str(outcome), outcome.close
        return lambda: cls(message, close)
    return lambda: ConversationStopped(f"conversation {name!r} failed: {outcome}")
