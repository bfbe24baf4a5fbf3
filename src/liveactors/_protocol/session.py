"""One conversation's protocol state across its connections (sans-IO).

Theory of operation. Like h11's ``Connection``, a :class:`ProtocolSession` takes bytes and
commands in, hands frames and events out, and is the only place its state changes. It owns:

* the current :class:`~liveactors._protocol.connection.LiveConnection` (what may be sent now,
  client indices), replaced at every connection;
* the :class:`~liveactors._protocol.tracker.EventTracker` (events, turns, tool calls, the latest
  resumable handle), which spans connections;
* the :class:`~liveactors._protocol.ledger.InputLedger` (what the service has of our input and
  what a new connection must send again), which spans connections too.

A connection's life, as the supervisor drives it::

    setup = session.connect(number)          # plan the replay; the setup frame (with a handle)
    while not session.receive_setup(frame)   # until setupComplete
    session.connected()                      # -> Connected event
    for frame in session.replay(): ...       # history and unanswered input, before new input
    session.restored()                       # -> HistoryRestored event, or None
    session.replay_trimmed()                 # -> ReplayTrimmed event, or None
    ... session.send_input(msg) / session.send_tool_responses(rs) / session.receive(frame)
    ... session.account(event) for each event, in order, just before it is published
    session.connection_lost()                # -> the events that close a cut turn

Nothing here does I/O or reads a clock: the caller passes the time where it matters.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from google.genai import types

from .. import events as ev
from .._errors import InvalidCommand, SessionRejected
from . import encode
from .connection import ConnectionState, LiveConnection
from .ledger import HandleMode, InputLedger, ResumePlan
from .tracker import EventTracker, TurnPhase

__all__ = ["ProtocolSession"]


class ProtocolSession:
    """The protocol state of one conversation (see the module docstring)."""

    def __init__(
        self,
        conversation: str,
        *,
        setup: dict[str, Any],
        handle: str | None = None,
        non_blocking: frozenset[str] = frozenset(),
        initial_history: bool = False,
        reseed_on_resume: bool = False,
        text_as_realtime: bool = False,
        replay_window: float = 15.0,
        manual_vad: bool = False,
    ) -> None:
        """``setup``: the encoded setup message; ``handle``: the resumption handle to start
        from. ``initial_history``: the config seeds history with ``clientContent`` before the
        conversation starts. ``reseed_on_resume``: a resumed session of this model may have
        lost that seed (it is sent again). ``text_as_realtime``: the model refuses
        ``clientContent`` once the session has started, so a user's turn of text goes as
        realtime text. ``replay_window``: realtime media older than this (seconds before the
        newest) is trimmed from the replay buffer. ``manual_vad``: the client marks activity
        (``activityStart`` / ``activityEnd``) instead of the service detecting it."""
        if (
            isinstance(replay_window, bool)
            or not isinstance(replay_window, int | float)
            or not replay_window >= 0
        ):
            raise InvalidCommand(
                f"replay_window must be a number of seconds >= 0, not {replay_window!r}"
            )
        self._setup = setup
        self._tracker = EventTracker(conversation, non_blocking=non_blocking, handle=handle)
        self._ledger = InputLedger(replay_window=float(replay_window))
        self._manual_vad = manual_vad
        self._conn = LiveConnection(number=0)
        self._conn.local_close()
        self._initial_history = initial_history
        #: Still seeding: clientContent is history, not a question, until turnComplete.
        self._seeding = initial_history
        self._reseed = initial_history and reseed_on_resume
        self._text_as_realtime = text_as_realtime
        self._plan = ResumePlan(resume=False)
        self._resumed = False
        #: Media the plans' replays lacked that no ReplayTrimmed event reported yet (a plan
        #: whose connection failed before its replay went out still counts).
        self._trimmed = (0, 0.0)

    # -- what the supervisor reads --------------------------------------------------------------

    @property
    def tracker(self) -> EventTracker:
        """The event tracker, to read (its state changes only through this session)."""
        return self._tracker

    @property
    def ledger(self) -> InputLedger:
        """The input ledger, to read (its state changes only through this session)."""
        return self._ledger

    @property
    def connection(self) -> LiveConnection:
        """The current (or last) connection's state, to read."""
        return self._conn

    @property
    def turns_completed(self) -> int:
        """Model turns completed so far (a barge-in counts; so does a cut turn)."""
        return self._tracker.turns_completed

    @property
    def turn_open(self) -> bool:
        """The model is answering, waits for a blocking call's response, or said it goes on
        after its turn."""
        tracker = self._tracker
        return tracker.phase is not TurnPhase.IDLE or tracker.awaiting_tool or tracker.model_busy

    @property
    def outstanding(self) -> bool:
        """A question was sent and its answer has not completed yet."""
        return self._ledger.outstanding

    @property
    def handoff_ready(self) -> bool:
        """Switching connections now loses and repeats nothing (see the ledger)."""
        return self._ledger.handoff_ready

    @property
    def answering(self) -> int | None:
        """The number of the exchange the model is answering now, if any."""
        exchange = self._ledger.answering()
        return None if exchange is None else exchange.number

    def undelivered(self, queued: list[dict[str, Any]]) -> ev.Event | None:
        """The conversation ends with the input messages ``queued`` never sent: the
        :class:`~liveactors.events.InputUndelivered` event handing them back after the
        questions sent whose answer never came (None when there is nothing to hand back)."""
        commands = self._ledger.unanswered_input() + queued
        if not commands:
            return None
        return self._tracker.emit(ev.InputUndelivered, commands=tuple(commands))

    def require_vad(self, what: str, *, manual: bool) -> None:
        """Raise :class:`~liveactors.InvalidCommand` unless the session's VAD is manual (or
        automatic): ``what()`` only means something then."""
        if manual and not self._manual_vad:
            raise InvalidCommand(
                f"{what}() needs manual VAD: set realtime_input_config."
                "automatic_activity_detection.disabled=True in the config"
            )
        if not manual and self._manual_vad:
            raise InvalidCommand(
                f"{what}() is for automatic VAD; with manual VAD use activity_end()"
            )

    def text_message(self, text: str, *, turn_complete: bool) -> dict[str, Any]:
        """The wire message for a user's text: ``clientContent``, or realtime text on a model
        that refuses ``clientContent`` once the session has started."""
        if turn_complete and self._text_as_realtime and not self._seeding:
            return encode.realtime_text(text)
        return encode.client_content(text, turn_complete=turn_complete)

    def check_tool_responses(self, responses: Iterable[types.FunctionResponse]) -> None:
        """Raise :class:`~liveactors.InvalidCommand` unless every response answers a pending
        call."""
        pending = self._tracker.pending_calls
        for response in responses:
            if response.id not in pending:
                known = ", ".join(sorted(pending)) or "none"
                raise InvalidCommand(
                    f"no pending tool call with id {response.id!r} (pending: {known})"
                )

    def emit(self, cls: type[ev.Event], **fields: Any) -> ev.Event:
        """A locally made event (Connected, Reconnecting...), numbered in the same sequence."""
        return self._tracker.emit(cls, **fields)

    def adopt(
        self,
        *,
        handle: str | None,
        seq: int,
        turn: int,
        turn_open: bool,
        started: bool,
        **ledger: Any,
    ) -> list[ev.Event]:
        """Carry on a conversation another process ran, from its durable record: the handle
        to resume from, the last ``seq`` and ``turn`` it published, whether a turn was open
        when it stopped, whether any input had been sent (``started``: initial history is then
        over), and the ledger's part (see :meth:`InputLedger.adopt`). Returns the events that
        close the turn it cut, numbered after ``seq``."""
        tracker = self._tracker
        tracker.handle = handle
        tracker.seq = seq
        tracker.turn = turn
        if started:
            self._seeding = False
        self._ledger.adopt(**ledger)
        if not turn_open:
            return []
        cut = [
            tracker.emit(ev.Interrupted),
            tracker.emit(ev.TurnComplete, reason="CONNECTION_LOST", interrupted=True),
        ]
        tracker.turn += 1  # the answer is regenerated under the next number
        return cut

    # -- a connection's life ------------------------------------------------------------------

    def connect(self, number: int) -> str:
        """Start connection ``number``: plan what it sends before new input, and return its
        setup frame (resuming from the latest handle when the plan says so)."""
        ledger = self._ledger
        ledger.new_connection()
        handle = self._tracker.handle
        self._plan = ledger.plan(
            have_handle=handle is not None,
            awaiting_tool=self._tracker.awaiting_tool,
            reseed=self._reseed,
        )
        chunks, seconds = self._trimmed
        self._trimmed = (chunks + self._plan.trimmed, seconds + self._plan.trimmed_seconds)
        if not self._plan.resume:
            handle = None
        self._resumed = handle is not None
        self._conn = LiveConnection(number=number)
        return self._conn.send_setup(self._setup_with(handle))

    def _setup_with(self, handle: str | None) -> dict[str, Any]:
        if handle is None:
            return self._setup
        setup = copy.deepcopy(self._setup)
        setup["setup"].setdefault("sessionResumption", {})["handle"] = handle
        # Initial history seeds the start of a session; a resumed one has started, and would
        # otherwise take the next question for more history and not answer it.
        setup["setup"].pop("historyConfig", None)
        return setup

    def receive_setup(self, frame: str | bytes | bytearray | memoryview) -> bool:
        """A frame before ``setupComplete`` (bare ``{}`` frames may come first); returns
        whether the connection is set up now."""
        self._conn.receive(frame)
        return self._conn.state is not ConnectionState.SETUP_SENT

    def connected(self) -> ev.Event:
        """Setup completed: the :class:`~liveactors.events.Connected` event."""
        if not self._resumed or self._ledger.mode is not HandleMode.ONCE:
            # The service's state predates these calls: a regenerated turn asks again.
            self._tracker.session_restarted()
        conn = self._conn
        return self._tracker.emit(
            ev.Connected, session_id=conn.session_id, resumed=self._resumed, connection=conn.number
        )

    def replay(self) -> list[str]:
        """The frames of the plan (history, unanswered input, a prompt to continue), numbered
        on this connection; send them before any new input."""
        plan = self._plan
        if self._initial_history and not plan.resume and plan.history is not None:
            # A fresh session expects the initial history first: the restored transcript is
            # it, and its turnComplete ends it (without a model call).
            plan.history["clientContent"]["turnComplete"] = True
        return [self._conn.send(message)[1] for message in plan.messages]

    def restored(self) -> ev.Event | None:
        """The :class:`~liveactors.events.HistoryRestored` event when a fresh session (not the
        first) was given the transcript, else None."""
        plan = self._plan
        if plan.history is None or plan.resume or self._conn.number <= 1:
            return None
        turns = len(plan.history["clientContent"]["turns"])
        return self._tracker.emit(ev.HistoryRestored, turns=turns)

    def replay_trimmed(self) -> ev.Event | None:
        """After :meth:`replay`: the :class:`~liveactors.events.ReplayTrimmed` event when the
        replay lacked media older than the replay window, else None."""
        chunks, seconds = self._trimmed
        if not chunks:
            return None
        self._trimmed = (0, 0.0)
        return self._tracker.emit(ev.ReplayTrimmed, chunks=chunks, seconds=seconds)

    def send_input(
        self, message: dict[str, Any], now: float, tag: str | None = None
    ) -> tuple[str, int | None]:
        """Record one input message about to be sent at ``now`` (the caller's clock): its
        frame, and the number of the exchange it joined (None: initial history, or a message
        that asks nothing). ``tag`` is kept with it in the ledger."""
        index, text = self._conn.send(message)
        if self._seeding and "clientContent" in message:
            # Initial history: the service takes it without answering.
            self._seeding = not message["clientContent"].get("turnComplete")
            self._ledger.seeded(message)
            return text, None
        self._seeding = False
        exchange = self._ledger.sent(message, index, now, tag)
        return text, None if exchange is None else exchange.number

    def send_tool_responses(self, responses: Iterable[types.FunctionResponse]) -> str | None:
        """The frame answering the calls still pending among ``responses`` (None when none is:
        a cancellation or a reconnect overtook them)."""
        pending = self._tracker.pending_calls
        live = [r for r in responses if r.id in pending]
        if not live:
            return None
        _, text = self._conn.send(encode.tool_response(live))
        # A response with willContinue (a NON_BLOCKING generator) leaves its call pending.
        self._tracker.tool_responded([r.id for r in live if r.id and not r.will_continue])
        return text

    def receive(self, frame: str | bytes | bytearray | memoryview) -> list[ev.Event]:
        """The events of one server frame, numbered in order. Pass each to :meth:`account`
        just before publishing it."""
        return self._tracker.events(self._conn.receive(frame))

    def account(self, event: ev.Event) -> int | None:
        """Update the ledger for one event of :meth:`receive`; returns the number of the
        exchange the event belongs to (the one being answered when it arrived), if any."""
        ledger = self._ledger
        exchange = ledger.answering()
        number = None if exchange is None else exchange.number
        kind = type(event)
        if kind is ev.AudioChunk or kind is ev.ModelPart or kind is ev.VideoChunk:
            ledger.model_output()
        elif kind is ev.TextDelta or kind is ev.OutputTranscript:
            ledger.model_output(event.text)  # type: ignore[attr-defined]
        elif kind is ev.InputTranscript:
            if not event.interim:  # type: ignore[attr-defined]
                # (An interim transcript is provisional: the final one replaces it.)
                ledger.input_transcript(event.text)  # type: ignore[attr-defined]
        elif kind is ev.ToolCall:
            ledger.model_output()
        elif kind is ev.TurnComplete:
            tracker = self._tracker
            ledger.turn_complete(calls_running=bool(tracker.pending_calls) or tracker.model_busy)
        elif kind is ev.ResumptionUpdate:
            resumable = event.resumable and bool(event.handle)  # type: ignore[attr-defined]
            ledger.resumption_update(resumable=resumable)
            consumed = event.last_consumed_client_message_index  # type: ignore[attr-defined]
            if resumable and consumed is not None:
                # Only a usable handle holds what the index says was consumed.
                ledger.consumed_index(consumed)
        elif kind is ev.GoAway:
            ledger.go_away()
        return number

    def connection_lost(self) -> list[ev.Event]:
        """The connection ended: close the turn it cut (Interrupted, then TurnComplete with
        reason CONNECTION_LOST) and forget its partial answer, which the next connection
        regenerates under a new turn number."""
        self._conn.local_close()
        self._ledger.turn_lost()
        return self._tracker.connection_lost()

    def closed(self) -> None:
        """The connection is closed (a stop or a handoff): nothing more is sent on it."""
        self._conn.local_close()

    def explain_rejection(self, exc: SessionRejected) -> SessionRejected:
        """``exc`` saying which model and which setup fields were sent, so a 1007/1008 the
        library could not foresee still points at the field (values are left out: they may be
        private)."""
        if exc.code not in (1007, 1008):
            return exc
        body = self._setup.get("setup", {})
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
        sent = ", ".join(fields) or "no fields"
        message = f"{exc} (sent model {body.get('model', '?')!r} with {sent})"
        return type(exc)(message, exc.close)

    def handle_refused(self) -> None:
        """The service refused the handle: the next connection starts a fresh session."""
        self._tracker.forget_handle()
