"""The supervisor: one conversation's connections, from first connect to final close.

Theory of operation. A conversation runs in one nursery that it owns. Inside it the supervisor
loops over connections; each connection runs a *reader* and a *writer*
(:mod:`liveactors._connection_run`). Tool calls run in tasks of the conversation's nursery, so
they survive a reconnect and answer on whichever connection is current.

The connection ends in one of three ways:

* **stop**: the writer reached a stop command: close with 1000; the conversation ends.
* **handoff** after ``goAway``: new input is held in the mailbox, in order; tool results still
  go out. Once the current turn reached a resumable point — or the time left is nearly over —
  the old socket is closed (the service refuses a resume while it is open) and a new connection
  resumes with the latest handle. A handoff is planned and never counts as a restart. When
  exactly is the :class:`~liveactors._handoff.HandoffTimer`'s decision.
* **failure**: a retryable close (1000/1006/1011/1013, EOF, bad frame) reconnects with backoff
  under the :class:`~liveactors.RestartPolicy`; ``HandleExpired`` starts a fresh session that
  restores the transcript; any other ``SessionRejected`` fails the conversation.

The protocol state (connection, events, what the service has of our input) lives in one
:class:`~liveactors._protocol.session.ProtocolSession`; on every new connection it plans what
to send before new input, so nothing acknowledged is lost and nothing answered is asked twice.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio
from google.genai import types

from . import events as ev
from ._backend_api import Backend
from ._bus import Bus
from ._connection_run import ConnectionRun
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
    LiveError,
    ProtocolError,
    SessionRejected,
)
from ._handoff import Ending, HandoffTimer
from ._mailbox import Alarm, Command, Mailbox, SendInput, SendToolResult, Stop
from ._observe import ConversationObserver, Telemetry
from ._protocol.session import ProtocolSession
from ._publish import Publisher
from ._reconnect import Reconnects
from ._reply import Replies, ReplyBuilder
from ._restart import RestartPolicy
from ._secrets import Secrets
from ._session_config import SessionSetup, manual_vad
from ._tools import ToolRunner, non_blocking_functions

__all__ = ["ConnectGate", "Supervisor", "SupervisorHooks"]

log = logging.getLogger("liveactors.supervisor")

#: Awaited before every connect (admission control and connect-rate limiting).
ConnectGate = Callable[[], Awaitable[None]]


@attrs.frozen
class SupervisorHooks:
    """How a cluster worker runs a conversation it owns (``Orchestrator._spawn``): its
    ``journal`` and ``may_send`` (see :class:`Supervisor`), and ``prepare``, called with the
    supervisor before it first connects, to carry on from the durable record."""

    journal: Callable[[ev.Event], None]
    may_send: Callable[[], bool]
    prepare: Callable[[Supervisor], None]


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
        replay_window: float = 15.0,
        journal: Callable[[ev.Event], None] | None = None,
        may_send: Callable[[], bool] | None = None,
        telemetry: Telemetry | None = None,
        alarm: Alarm | None = None,
    ) -> None:
        """``journal`` sees every event, in ``seq`` order, synchronously, just before it is
        published (a cluster worker records it durably); ``may_send`` is asked before every
        frame goes out and stops the conversation at once when it says no (a worker that
        lost its lease must not act for the conversation any more).

        ``replay_window``: realtime media (audio and video chunks) sent more than this many
        seconds before the newest is trimmed from the replay buffer, so a long stream neither
        grows memory nor is replayed whole after a reconnect (``math.inf``: keep it all).

        ``telemetry``: the orchestrator's observability counters (``_observe.py``); ``alarm``:
        its mailbox alarm (the writer's timed waits then make no cancel scope each)."""
        self.name = name
        self.backend = backend
        self.config = session.config
        self.model = model = session.model
        self._setup = session.setup
        self.actor = actor
        self.bus = bus
        self.policy = restart
        self.reconnects = Reconnects(name, restart, rng)
        #: Awaited before every connect.
        self.gate = gate
        #: Told every resumable handle (the orchestrator saves it).
        self.on_handle = on_handle
        non_blocking = non_blocking_functions(
            self._setup, default=model is not None and model.non_blocking_default
        )
        history = self.config.history_config
        #: The protocol state: the current connection, events, and the input ledger.
        self.session = ProtocolSession(
            name,
            setup=self._setup,
            handle=initial_handle or session.handle,
            non_blocking=non_blocking,
            initial_history=bool(history and history.initial_history_in_client_content),
            reseed_on_resume=model is not None and not model.resume_keeps_seed,
            text_as_realtime=model is not None and not model.client_content_mid_session,
            replay_window=replay_window,
            manual_vad=manual_vad(self.config),
        )
        #: Every handle this conversation used or received (newest kept): a close reason that
        #: quotes one never shows it in an error or a log record.
        self.secrets = Secrets([initial_handle, session.handle])
        self.mailbox: Mailbox[Command] = Mailbox(mailbox_size, alarm)
        self.ref = ConversationRef(self)
        actor.ref = self.ref
        self.state = ConversationState.CONNECTING
        self.finished = False
        self._finished = trio.Event()
        self._started = False
        #: Observability hook points: counters, and spans when liveactors.otel is on. Made
        #: here, in the spawning task, so a conversation's span nests in the spawner's trace.
        self.observer = ConversationObserver(
            name, str(self._setup.get("setup", {}).get("model", "")), telemetry
        )
        self.tools = ToolRunner(name, actor, non_blocking, self._tool_answered, self.observer)
        #: The actor's on_turn_complete, when it has one of its own.
        self.on_turn_complete = (
            actor.on_turn_complete
            if type(actor).on_turn_complete is not Conversation.on_turn_complete
            else None
        )
        #: The conversation's own nursery (its tool calls and on_start run there).
        self.nursery: trio.Nursery | None = None
        #: When the connection ends after a goAway or for a stop.
        self.handoff = HandoffTimer()
        self.publisher = Publisher(name, bus, actor, journal)
        self.may_send = may_send
        #: The asks waiting for their answers.
        self.replies = Replies()
        #: When the latest resumable handle came.
        self.handle_time: float | None = None
        self.connections = 0
        self.handoffs = 0
        self.messages_in = 0
        self.messages_out = 0
        self.tokens = 0
        #: Input messages handed back in InputUndelivered when the conversation ended.
        self.undelivered = 0

    def __repr__(self) -> str:
        return f"<Supervisor {self.name!r} {self.state.value}>"

    @property
    def owes_input(self) -> bool:
        """Acknowledged input waits: queued in the mailbox, or a question unanswered. A
        shutdown should let such a conversation stop gracefully (deliver within the grace),
        even while it reconnects; what the grace cannot deliver is handed back."""
        return len(self.mailbox) > 0 or self.session.outstanding

    # -- commands from ConversationRef ------------------------------------------------------

    async def submit(
        self, message: dict[str, Any], reply: ReplyBuilder | None = None, *, tag: str | None = None
    ) -> None:
        """Queue one validated input message (refused once a stop is queued); ``tag`` names
        it in the ledger (see ``InputLedger.sent``)."""
        await self.mailbox.put(SendInput(message, reply, tag))

    async def submit_tool_response(self, responses: list[types.FunctionResponse]) -> None:
        """Queue tool responses; every id must belong to a pending call."""
        await trio.lowlevel.checkpoint_if_cancelled()
        self.mailbox.check_urgent()
        self.session.check_tool_responses(responses)
        self.mailbox.put_urgent(SendToolResult(tuple(responses)))
        await trio.lowlevel.cancel_shielded_checkpoint()

    def text_message(self, text: str, *, turn_complete: bool) -> dict[str, Any]:
        """The wire message for a user's text (see ``ProtocolSession.text_message``)."""
        return self.session.text_message(text, turn_complete=turn_complete)

    def require_manual_vad(self, what: str) -> None:
        """``activity_start``/``activity_end`` only mean something with manual VAD."""
        self.session.require_vad(what, manual=True)

    def require_automatic_vad(self, what: str) -> None:
        """``audio_stream_end`` only means something with automatic VAD."""
        self.session.require_vad(what, manual=False)

    async def stop(self, grace: float) -> None:
        """Queue a stop after everything already sent, then wait until closed. After ``grace``
        seconds the conversation closes whatever is still in flight (even mid-reconnect)."""
        if not self.finished and not self.mailbox.sealed:
            self.handoff.stop_requested(trio.current_time(), grace)
            self.reconnects.cut_short(self.handoff.stop_at)
            name = self.name

            def stopping() -> LiveError:
                return ConversationStopped(f"conversation {name!r} is stopping")

            # Input already queued goes out first; input sent from now on is refused, rather
            # than accepted and then never sent.
            self.mailbox.seal(stopping, last=Stop(max(0.0, grace)))
        await self._finished.wait()

    async def wait_finished(self) -> None:
        """Until the conversation is closed or failed."""
        await self._finished.wait()

    def statistics(self) -> ConversationStatistics:
        """A snapshot of the counters."""
        age = None if self.handle_time is None else trio.current_time() - self.handle_time
        return ConversationStatistics(
            name=self.name,
            state=self.state,
            connections=self.connections,
            reconnects=self.reconnects.reconnects,
            handoffs=self.handoffs,
            messages_in=self.messages_in,
            messages_out=self.messages_out,
            tokens=self.tokens,
            turns=self.session.turns_completed,
            last_handle_age=age,
            mailbox=len(self.mailbox),
            subscribers=self.bus.subscription_count(self.name),
            events_dropped=self.bus.dropped(self.name),
            busy_retries=self.reconnects.busy_retries,
            undelivered=self.undelivered,
            replay_trimmed=self.session.ledger.trimmed,
        )

    # -- the supervision loop -----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the conversation until it is stopped, fails or is cancelled.

        Until the first connection is set up, a failure raises (so ``spawn`` sees it); after
        that it becomes a :class:`~liveactors.events.ConversationFailed` event.
        """
        outcome: LiveError | None = None
        self.observer.started()
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            try:
                await self._supervise(task_status)
            except LiveError as exc:
                outcome = exc
            finally:
                nursery.cancel_scope.cancel()
                try:
                    await self.publisher.final_hooks(self._finish(outcome))
                finally:
                    self.observer.finished(self, outcome)
        if outcome is not None and not self._started:
            raise outcome

    async def _supervise(self, task_status: trio.TaskStatus[None]) -> None:
        while True:
            if self._started and self.handoff.stop_overdue(trio.current_time()):
                return  # a stop's grace ran out between connections
            run = ConnectionRun(self)
            try:
                ending = await run.run(self._ready(task_status))
            except HandleExpired as exc:
                log.info("%s: resumption handle refused; starting a fresh session", self.name)
                self.session.handle_refused()
                await self._recover(exc)
                continue
            except SessionRejected as exc:
                raise self.session.explain_rejection(exc) from None
            except ConnectionLost as exc:
                if self.handoff.holding or (exc.code == 1000 and run.progress):
                    # The service ended the connection it announced with goAway (its deadline
                    # passed mid-turn), or ended a connection that was making progress with a
                    # normal close (Vertex AI's 10-minute cut: 1000 "The operation was
                    # cancelled.", often without a goAway): a planned switch, not a failure.
                    # Everything it sent before closing was read; the ledger replays what it
                    # did not answer. (A 1000 before any progress is a failure: no hot loop.)
                    await self._handed_off(
                        "goaway_closed" if self.handoff.holding else "service_close"
                    )
                    continue
                await self._recover(exc)
                continue
            except ProtocolError as exc:
                await self._recover(exc)
                continue
            if ending is Ending.STOP:
                if type(self.actor).on_stop is not Conversation.on_stop:
                    await self.publisher.hook(self.actor.on_stop)
                return
            await self._handed_off("goaway")

    async def _handed_off(self, cause: str) -> None:
        """A goAway handoff is done on the old connection; the next one resumes. ``cause``
        (for the metrics): ``goaway`` (at a resumable point), ``goaway_closed`` (the connection
        ended after a goAway, before the switch) or ``service_close``."""
        self.handoffs += 1
        self.observer.handed_off(cause)
        self.state = ConversationState.RECONNECTING
        # The switch may have come mid-turn (the time left ran out first).
        await self._close_cut_turn()

    async def _close_cut_turn(self) -> None:
        """A connection ended mid-turn: end that turn for subscribers (Interrupted, then
        TurnComplete with reason CONNECTION_LOST) and forget its partial answer, which the
        next connection regenerates under a new turn number."""
        self.replies.reset(self.session.answering)
        for event in self.session.connection_lost():
            await self.publisher.deliver(event)

    async def _recover(self, exc: LiveError) -> None:
        """After a failed connection: close the turn it cut, then back off (or give up)."""
        self.state = ConversationState.RECONNECTING
        self.observer.connection_failed()
        await self._close_cut_turn()
        try:
            backoff = self.reconnects.after(exc, trio.current_time())  # raises to give up
        except LiveError:
            self.observer.gave_up(exc)
            raise
        self.observer.reconnecting(exc, str(exc), backoff.attempt, backoff.delay)
        await self.publisher.deliver(
            self.session.emit(
                ev.Reconnecting, reason=str(exc), attempt=backoff.attempt, delay=backoff.delay
            )
        )
        await self.reconnects.sleep(backoff.delay, until=self.handoff.stop_at)

    def _ready(self, task_status: trio.TaskStatus[None]) -> Callable[[], Awaitable[None]]:
        """What a connection does once it is set up and replayed: the first time, tell the
        spawner the conversation started, and start ``on_start``."""

        async def ready() -> None:
            if not self._started:
                self._started = True
                task_status.started()
                if type(self.actor).on_start is not Conversation.on_start:
                    assert self.nursery is not None
                    await self.nursery.start(self._on_start)

        return ready

    async def _on_start(self, *, task_status: trio.TaskStatus[None]) -> None:
        """``on_start`` in a task of the conversation's nursery, so it can ``ask()`` (which
        needs the reader and the writer running) and a reconnect does not cut it. It runs up
        to its first checkpoint before the connection's reader starts."""
        task_status.started()
        await self.publisher.hook(self.actor.on_start)

    def _tool_answered(self, responses: tuple[types.FunctionResponse, ...]) -> None:
        self.mailbox.put_urgent(SendToolResult(responses))

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
        left = self.mailbox.close(error)
        self.replies.fail_all(error)
        final: list[ev.Event] = []
        undelivered = self._hand_back(left, error)
        if undelivered is not None:
            final.append(undelivered)
        if outcome is not None and (self._started or self.publisher.journal is not None):
            # Before the first connection, spawn raises the error instead; a journal (a
            # cluster worker's record, read by another process) must still be told.
            final.append(self.session.emit(ev.ConversationFailed, error=outcome))
        final.append(self.session.emit(ev.ConversationClosed))
        self.publisher.deliver_now(final)
        self.bus.end_conversation(self.name)
        self._finished.set()
        return final

    def _hand_back(self, left: list[Command], error: Callable[[], LiveError]) -> ev.Event | None:
        """Acknowledged input the conversation ends without delivering is never dropped
        silently: it goes back in an InputUndelivered event, with a WARNING (and the asks
        waiting on it fail)."""
        queued = [c for c in left if type(c) is SendInput]
        for command in queued:
            if command.reply is not None:
                command.reply.fail(error())
        event = self.session.undelivered([c.message for c in queued])
        if event is not None:
            self.undelivered += len(event.commands)  # type: ignore[attr-defined]
            log.warning(
                "%s: ended with %d input message(s) undelivered; handed back in InputUndelivered",
                self.name,
                len(event.commands),  # type: ignore[attr-defined]
            )
        return event


def _refusal(name: str, outcome: LiveError) -> Callable[[], LiveError]:
    """What further commands raise after the conversation failed with ``outcome``."""
    if isinstance(outcome, SessionRejected):
        cls = type(outcome)
        message, close = str(outcome), outcome.close
        return lambda: cls(message, close)
    return lambda: ConversationStopped(f"conversation {name!r} failed: {outcome}")
