"""The Live protocol on one connection: its state, its setup, and the glue between the parts.

Builds on :class:`~liveactors.testing._connection.ConnectionBase` (reading, writing, closing).
:class:`Connection` holds what one connection knows (the model it plays and how it behaves, the
running turn, voice activity, pending input) and handles ``setup`` itself: the model and its
refusals (``_setup``), admission (``max_sessions``), resumption, then ``setupComplete``. The
rest is in modules with one job each, which take the connection as their first argument:

* ``_input`` — ``clientContent``, ``realtimeInput``, ``contextUpdate``;
* ``_speech`` — voice activity, barge-in by speech, transcription;
* ``_tools`` — ``toolResponse`` and its scheduling;
* ``_bargein`` — interruptions, and the 3.8 generation's dropped and re-issued calls;
* ``_schedule`` — what runs next after each message and each turn, resumption updates;
* ``_turns`` — one model turn; ``_timers`` — everything timed.

Besides the reader, a connection runs a *timer* task and at most one *turn* task at a time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import trio
import trio_websocket

from .._models import Platform
from . import _frames as frames
from ._connection import ConnectionBase
from ._input import client_content, context_update, realtime_input
from ._log import ConnectionRecord, TurnRecord
from ._model import TurnContext
from ._profiles import PROFILE_MODELS, Behaviour, FakeModel, behaviour_of, resolve_model
from ._resumption import HandleNotFound, Session
from ._schedule import announce_busy, more_to_come, pump
from ._setup import SetupPlan, read_setup
from ._shared import ServerCore
from ._speech import end_activity
from ._state import SessionState
from ._timers import run_timers
from ._tools import tool_response
from ._turns import RunningTurn, context_for, reply_content
from ._vad import VoiceActivity
from ._wire import (
    CANCELLED_REASON,
    DEADLINE_REASON,
    EXHAUSTED_REASON,
    INTERNAL_REASON,
    INVALID_ARGUMENT,
    SESSION_NOT_FOUND,
    ProtocolViolation,
)

__all__ = ["Connection"]


class Connection(ConnectionBase):
    """The Live protocol on one connection: setup, input, turns, resumption, limits."""

    __slots__ = (
        "_state",
        "announced",
        "answered_once",
        "audio_received",
        "barge_at",
        "behaviour",
        "compression",
        "goaway_sent",
        "initial_history",
        "input_transcription",
        "interrupts",
        "lifetime_close",
        "modality",
        "model",
        "next_interim",
        "on_vertex",
        "open_records",
        "output_transcription",
        "resumption",
        "running",
        "setup_at",
        "setup_done",
        "speech_end_offset",
        "timer_scope",
        "tool_turns",
        "tools",
        "transparent",
        "user_turn",
        "vad",
        "waiting_record",
        "window",
    )

    def __init__(
        self,
        core: ServerCore,
        ws: trio_websocket.WebSocketConnection,
        stream: trio.abc.Stream,
        record: ConnectionRecord,
        *,
        auth_error: str | None = None,
    ) -> None:
        super().__init__(core, ws, stream, record, auth_error=auth_error)
        options = self.options
        # The state this connection works on: a resumption may give the session a new one
        # while this connection is still winding down.
        self._state: SessionState | None = None
        self.on_vertex = record.vertex
        self.lifetime_close = options.lifetime_close or (
            (1000, CANCELLED_REASON) if self.on_vertex else (1011, DEADLINE_REASON)
        )
        self.setup_done = False
        # Until setup says otherwise: the profile's model.
        self.model: FakeModel = resolve_model(
            PROFILE_MODELS[options.model_profile], options.model_profile
        )
        self.behaviour: Behaviour = behaviour_of(self.model, options)
        self.modality = "AUDIO"
        self.input_transcription = False
        self.output_transcription = False
        self.interrupts = True
        self.tools: dict[str, Mapping[str, Any]] = {}
        self.vad = VoiceActivity()
        self.window = self.model.window
        self.compression: tuple[int, int] | None = None
        self.resumption = False
        self.transparent = False
        self.timer_scope: trio.CancelScope | None = None
        self.setup_at = math.inf
        self.goaway_sent = False
        self.initial_history = False
        self.running: RunningTurn | None = None
        self.waiting_record: TurnRecord | None = None
        #: Turn records of this connection without an outcome yet.
        self.open_records: list[TurnRecord] = []
        self.user_turn: str | None = None
        self.tool_turns: list[Mapping[str, Any]] = []
        self.announced: str | None = None
        #: A model turn ran on this connection (3.1 refuses ``clientContent`` after that).
        self.answered_once = False
        #: When a polite barge-in interrupts (infinity: none pending).
        self.barge_at = math.inf
        #: Seconds of input audio received on this connection (``voiceActivity.audioOffset``).
        self.audio_received = 0.0
        self.speech_end_offset = 0.0
        #: Speech seconds at which the next interim transcription goes out.
        self.next_interim = 0.0

    def __repr__(self) -> str:
        return f"<Connection {self.id} session={self.session.id if self.session else None}>"

    @property
    def state(self) -> SessionState:
        """The state of this connection's session."""
        assert self._state is not None
        return self._state

    def _session_over(self, now: float) -> None:
        turn = self.running
        writing = turn is not None and turn.writing_turn_complete
        if turn is not None and turn.outcome is None and not turn.interrupted and not writing:
            self.cut(turn)
        for open_record in list(self.open_records):
            if writing and turn is not None and open_record is turn.record:
                continue  # settled by the turnComplete write under way
            self.settle(open_record, "cut")
        session = self.session
        if session is not None:
            if self.setup_at < now:
                session.used_seconds += now - self.setup_at
            if session.connection == self.id:
                session.connection = None
                session.ended_at = now

    def cut(self, turn: RunningTurn) -> None:
        """The connection ended mid-turn: the turn's input goes back, unanswered."""
        turn.outcome = "cut"
        self.state.pending_input[:0] = turn.taken
        self.settle(turn.record, "cut")

    def settle(self, record: TurnRecord, outcome: str) -> None:
        """A turn record gets its outcome."""
        if record.outcome is None:
            record.outcome = outcome
            record.ended_at = trio.current_time()
        if record in self.open_records:
            self.open_records.remove(record)
        self.core.log.changed()

    # -- dispatch --------------------------------------------------------------------------

    async def _dispatch(self, key: str, body: Any) -> None:
        if not self.setup_done:
            if key != "setup":
                raise ProtocolViolation(1007, INVALID_ARGUMENT)
            await self._setup(body)
        elif key == "setup":
            raise ProtocolViolation(1007, INVALID_ARGUMENT)
        elif key == "clientContent":
            await client_content(self, body)
        elif key == "realtimeInput":
            await realtime_input(self, body)
        elif key == "toolResponse":
            await tool_response(self, body)
            self.compress()
        elif key == "contextUpdate":
            context_update(self, body)

    # -- setup -----------------------------------------------------------------------------

    async def _setup(self, body: dict[str, Any]) -> None:
        options = self.options
        plan = read_setup(
            body,
            options,
            platform=Platform.VERTEX if self.on_vertex else Platform.DEVELOPER,
            api_version=self.record.api_version,
            served=self.core.model_served,
        )
        self._admit()
        if plan.handle:
            session = self._resume(plan.handle, plan)
        else:
            session = self.core.registry.create(plan.model, body)
        session.config = body
        session.connection = self.id
        session.ended_at = None
        self.session = session
        self._state = session.state
        self.record.session = session.id
        self.record.resumed_from = plan.handle
        self.record.model = plan.fake_model.name
        self._configure(plan)

        if options.setup_latency:
            await self._setup_latency()
        if not await self.send(frames.setup_complete(session.id)):
            return
        self.setup_done = True
        self.setup_at = self.record.setup_at = trio.current_time()
        self.wake_timer()
        if plan.resumption:
            self.resumption = True
            self.transparent = plan.transparent
            if options.handle_mode == "once":
                handle = self.core.registry.issue(session, None, 0)
                await self.send(frames.resumption_update(handle))
        elif options.unsolicited_resumption:
            # Seen on the current service: a handle nobody asked for, to the live state.
            handle = self.core.registry.issue(session, None, 0)
            await self.send(frames.resumption_update(handle))
        if self.state.waiting is not None and self.state.waiting.reissue:
            self.wake_timer()  # a call dropped on the last connection is still to be re-issued

    def _admit(self) -> None:
        """``max_sessions``: refuse a session beyond the limit (RESOURCE_EXHAUSTED)."""
        limit = self.options.max_sessions
        if limit is None or self.options.max_sessions_refusal != "close":
            return
        active = sum(1 for c in self.core.open.values() if c.setup_done and not c.closing)
        if active >= limit:
            raise ProtocolViolation(1011, EXHAUSTED_REASON)

    def _resume(self, handle: str, plan: SetupPlan) -> Session:
        rejection = self.core.faults.take_handle_rejection()
        if rejection is not None:
            raise ProtocolViolation(*rejection)
        try:
            session, state = self.core.registry.resolve(handle, trio.current_time())
        except HandleNotFound:
            raise ProtocolViolation(1008, SESSION_NOT_FOUND) from None
        if session.model != plan.model:
            raise ProtocolViolation(1007, INVALID_ARGUMENT)
        old = self.core.open.get(session.connection) if session.connection else None
        if old is not None and not old.closing and old.ws.closed is None:
            if self.options.resume_while_open_fails:
                raise ProtocolViolation(1011, INTERNAL_REASON)
            old.supersede()
        loses = self.options.resume_loses_prefill
        if loses is None:
            loses = plan.fake_model.loses_prefill
        if loses and any(e.prefill for e in state.history):
            lost = state.forget_prefill()
            self.core.log.note(
                self.id, session.id, "prefill_lost", f"resumption forgot the prefill ({lost} turns)"
            )
        session.state = state
        return session

    def _configure(self, plan: SetupPlan) -> None:
        self.model = plan.fake_model
        self.behaviour = behaviour_of(plan.fake_model, self.options)
        self.modality = plan.modality
        self.input_transcription = plan.input_transcription
        self.output_transcription = plan.output_transcription
        self.vad = VoiceActivity(
            auto=plan.auto_vad, gap=plan.silence_gap, threshold=self.options.vad_threshold
        )
        self.interrupts = plan.interrupts
        self.tools = dict(plan.tools)
        self.window = plan.window
        self.compression = plan.compression
        self.initial_history = plan.initial_history

    async def _setup_latency(self) -> None:
        """Wait ``setup_latency``; messages arriving meanwhile are queued or refused (strict)."""
        with trio.move_on_after(self.options.setup_latency):
            while True:
                try:
                    raw = await self.ws.get_message()
                except trio_websocket.ConnectionClosed as exc:
                    self._client_closed(exc)
                    return
                if self.options.strict_before_setup:
                    self.index += 1
                    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
                    self._log_client(self.index, None, "early", {"raw": text})
                    raise ProtocolViolation(1007, INVALID_ARGUMENT)
                self._early.append(raw)

    # -- input -------------------------------------------------------------------------------

    def busy(self) -> bool:
        """Whether a turn runs or waits on blocking calls."""
        return self.running is not None or (
            self.session is not None and self.state.waiting is not None
        )

    def compress(self) -> None:
        """Apply the sliding window if the context passed its trigger."""
        if self.compression is None or self.session is None:
            return
        trigger, target = self.compression
        before = self.state.total_tokens
        if self.state.compress(trigger, target):
            self.core.log.note(
                self.id,
                self.session.id,
                "compression",
                f"sliding window: {before} -> {self.state.total_tokens} tokens",
            )

    # -- turns -----------------------------------------------------------------------------

    def context_for(self, turn: RunningTurn) -> TurnContext:
        """The responder's view of ``turn``."""
        return context_for(self, turn)

    def more_to_come(self) -> bool:
        """Whether the model goes on at once after the current turn (``IN_PROGRESS``)."""
        return more_to_come(self)

    def turn_complete_frame(
        self,
        usage: Mapping[str, Any],
        extra: Mapping[str, Any] | None = None,
        *,
        interrupted: bool = False,
    ) -> frames.Frame:
        """``turnComplete`` as this endpoint and model send it (an interrupted turn is always
        followed by the input that interrupted it: ``IN_PROGRESS``)."""
        fields = dict(extra or {})
        if self.behaviour.interaction_status:
            more = interrupted or self.more_to_come()
            fields["interactionStatus"] = "IN_PROGRESS" if more else "IDLE"
        return frames.turn_complete(frames.vertex_usage(usage) if self.on_vertex else usage, fields)

    async def _pump(self) -> None:
        await pump(self)

    def new_record(
        self, number: int, user_text: str, trigger: str, continuation: bool
    ) -> TurnRecord:
        """A turn record of this connection, open until :meth:`settle`."""
        assert self.session is not None
        record = TurnRecord(
            self.session.id,
            number,
            user_text,
            self.id,
            trigger,
            trio.current_time(),
            continuation=continuation,
        )
        self.core.log.add_turn(record)
        self.open_records.append(record)
        return record

    def turn_completed(self, turn: RunningTurn) -> None:
        """``turnComplete`` went out: the answer joins the history."""
        content, tokens = reply_content(turn, self.modality)
        self.state.append(content, tokens, self.modality)
        self.compress()
        self.settle(turn.record, "completed")

    async def announce_busy(self) -> None:
        """The session is not resumable now (see ``_schedule.announce_busy``)."""
        await announce_busy(self)

    # -- timers ----------------------------------------------------------------------------

    def wake_timer(self) -> None:
        """A deadline changed: the timer task recomputes them."""
        if self.timer_scope is not None:
            self.timer_scope.cancel()

    async def _timers(self) -> None:
        await run_timers(self)

    async def end_spoken_turn(self) -> None:
        """The silence gap passed: the spoken turn ends and is answered."""
        await end_activity(self)
        await pump(self)

    async def pump(self) -> None:
        """Start whatever should run next (for the helper modules)."""
        await pump(self)
