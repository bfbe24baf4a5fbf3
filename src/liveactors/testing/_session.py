"""The Live protocol on one connection: setup, input, model turns, resumption, limits.

Builds on :class:`~liveactors.testing._connection.ConnectionBase` (reading, writing, closing).
Besides the reader, a connection runs a *timer* task (GoAway, the end of the lifetime, the
session-time limit, the silence that ends a spoken user turn) and at most one *turn* task
(``_turns.run_turn``) at a time.

After every client message and every finished turn, :meth:`Connection._pump` decides what runs
next: the continuation of a turn whose tool calls are all answered, then a user turn, then a
turn for a NON_BLOCKING result; and, when nothing runs and no call is pending, the session is
idle and (in "per_turn" handle mode) gets a fresh resumption handle. Barge-in
(:meth:`Connection._barge_in`) interrupts the running turn, cancels its pending blocking calls
and ends it with ``interrupted`` / ``toolCallCancellation`` / ``turnComplete``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final

import trio
import trio_websocket

from . import _frames as frames
from ._audio import audio_label, loudest_sample, rate_of
from ._connection import ConnectionBase
from ._log import ConnectionRecord, TurnRecord
from ._model import TurnContext
from ._resumption import HandleNotFound, Session
from ._setup import DEFAULT_WINDOW, SetupPlan, declared_functions, enum_name, read_setup
from ._shared import ServerCore
from ._state import SessionState
from ._tokens import IMAGE_TOKENS, audio_tokens, text_tokens
from ._turns import RunningTurn, context_for, reply_content, run_turn
from ._vad import VoiceActivity
from ._wire import (
    DEADLINE_REASON,
    INTERNAL_REASON,
    INVALID_ARGUMENT,
    SESSION_NOT_FOUND,
    ProtocolViolation,
    b64_standard,
)

__all__ = ["Connection"]

_SCHEDULING: Final = {0: "SCHEDULING_UNSPECIFIED", 1: "SILENT", 2: "WHEN_IDLE", 3: "INTERRUPT"}


class Connection(ConnectionBase):
    """The Live protocol on one connection: setup, input, turns, resumption, limits."""

    __slots__ = (
        "_announced",
        "_goaway_sent",
        "_initial_history",
        "_open_records",
        "_setup_at",
        "_state",
        "_timer_scope",
        "_tool_turns",
        "_turn",
        "_user_turn",
        "_waiting_record",
        "compression",
        "input_transcription",
        "interrupts",
        "modality",
        "output_transcription",
        "resumption",
        "setup_done",
        "tools",
        "transparent",
        "vad",
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
        # The state this connection works on: a resumption may give the session a new one
        # while this connection is still winding down.
        self._state: SessionState | None = None
        self.setup_done = False
        self.modality = "AUDIO"
        self.input_transcription = False
        self.output_transcription = False
        self.interrupts = True
        self.tools: dict[str, Mapping[str, Any]] = {}
        self.vad = VoiceActivity()
        self.window = DEFAULT_WINDOW
        self.compression: tuple[int, int] | None = None
        self.resumption = False
        self.transparent = False
        self._timer_scope: trio.CancelScope | None = None
        self._setup_at = math.inf
        self._goaway_sent = False
        self._initial_history = False
        self._turn: RunningTurn | None = None
        self._waiting_record: TurnRecord | None = None
        #: Turn records of this connection without an outcome yet.
        self._open_records: list[TurnRecord] = []
        self._user_turn: str | None = None
        self._tool_turns: list[Mapping[str, Any]] = []
        self._announced: str | None = None

    def __repr__(self) -> str:
        return f"<Connection {self.id} session={self.session.id if self.session else None}>"

    @property
    def state(self) -> SessionState:
        """The state of this connection's session."""
        assert self._state is not None
        return self._state

    def _session_over(self, now: float) -> None:
        turn = self._turn
        writing = turn is not None and turn.writing_turn_complete
        if turn is not None and turn.outcome is None and not turn.interrupted and not writing:
            self.cut(turn)
        for open_record in list(self._open_records):
            if writing and turn is not None and open_record is turn.record:
                continue  # settled by the turnComplete write under way
            self._settle(open_record, "cut")
        session = self.session
        if session is not None:
            if self._setup_at < now:
                session.used_seconds += now - self._setup_at
            if session.connection == self.id:
                session.connection = None
                session.ended_at = now

    def cut(self, turn: RunningTurn) -> None:
        """The connection ended mid-turn: the turn's input goes back, unanswered."""
        turn.outcome = "cut"
        self.state.pending_input[:0] = turn.taken
        self._settle(turn.record, "cut")

    def _settle(self, record: TurnRecord, outcome: str) -> None:
        """A turn record gets its outcome."""
        if record.outcome is None:
            record.outcome = outcome
            record.ended_at = trio.current_time()
        if record in self._open_records:
            self._open_records.remove(record)
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
            await self._client_content(body)
        elif key == "realtimeInput":
            await self._realtime_input(body)
        elif key == "toolResponse":
            await self._tool_response(body)
        elif key == "contextUpdate":
            self._context_update(body)

    # -- setup -----------------------------------------------------------------------------

    async def _setup(self, body: dict[str, Any]) -> None:
        options = self.options
        plan = read_setup(
            body,
            options,
            model_known=self.core.model_known,
            api_version=self.record.api_version,
        )
        if plan.handle:
            session = self._resume(plan.handle, plan.model)
        else:
            session = self.core.registry.create(plan.model, body)
        session.config = body
        session.connection = self.id
        session.ended_at = None
        self.session = session
        self._state = session.state
        self.record.session = session.id
        self.record.resumed_from = plan.handle
        self._configure(plan)

        if options.setup_latency:
            await self._setup_latency()
        if not await self.send(frames.setup_complete(session.id)):
            return
        self.setup_done = True
        self._setup_at = self.record.setup_at = trio.current_time()
        self._wake_timer()
        if plan.resumption:
            self.resumption = True
            self.transparent = plan.transparent
            if options.handle_mode == "once":
                handle = self.core.registry.issue(session, None, 0)
                await self.send(frames.resumption_update(handle))

    def _resume(self, handle: str, model: str) -> Session:
        rejection = self.core.faults.take_handle_rejection()
        if rejection is not None:
            raise ProtocolViolation(*rejection)
        try:
            session, state = self.core.registry.resolve(handle, trio.current_time())
        except HandleNotFound:
            raise ProtocolViolation(1008, SESSION_NOT_FOUND) from None
        if session.model != model:
            raise ProtocolViolation(1007, INVALID_ARGUMENT)
        old = self.core.open.get(session.connection) if session.connection else None
        if old is not None and not old.closing and old.ws.closed is None:
            if self.options.resume_while_open_fails:
                raise ProtocolViolation(1011, INTERNAL_REASON)
            old.supersede()
        session.state = state
        return session

    def _configure(self, plan: SetupPlan) -> None:
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
        self._initial_history = plan.initial_history

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

    # -- client content, realtime input, tool responses ------------------------------------

    def _busy(self) -> bool:
        return self._turn is not None or (
            self.session is not None and self.state.waiting is not None
        )

    async def _client_content(self, body: Mapping[str, Any]) -> None:
        # "A message here will interrupt any current model generation" (proto).
        if self._busy() and not self._initial_history:
            await self._barge_in()
        state = self.state
        for content in body.get("turns") or ():
            state.add_content(content)
            if content.get("role") == "model":
                # A model turn the client supplies as history (restoring a conversation) counts
                # like one the model spoke, so the echo counter carries on across a restore.
                state.turn += 1
        self._compress()
        if body.get("turnComplete"):
            if self._initial_history:
                self._initial_history = False  # the seeded history ends; no model call
                return
            self._user_turn = "clientContent"

    async def _realtime_input(self, body: Mapping[str, Any]) -> None:
        for field, value in body.items():
            if field == "audio":
                await self._audio(value)
            elif field == "video":
                self._video(value)
            elif field == "mediaChunks":
                if value:  # "all but the first will be ignored"
                    blob = value[0]
                    if str(blob.get("mimeType", "")).startswith("image/"):
                        self._video(blob)
                    else:
                        await self._audio(blob)
            elif field == "text":
                if self._busy() and self.interrupts:
                    await self._barge_in()
                self.state.add_user_text(value)
                self._compress()
                self._user_turn = "realtimeInput.text"
            elif field == "audioStreamEnd":
                if value and self.vad.auto and self.vad.active:
                    await self._end_activity()
            elif field == "activityStart":
                if self.vad.auto:
                    raise ProtocolViolation(1007, INVALID_ARGUMENT)
                if not self.vad.active:
                    self.vad.start(trio.current_time(), self.index)
                    if self._busy() and self.interrupts:
                        await self._barge_in()
            elif field == "activityEnd":
                if self.vad.auto:
                    raise ProtocolViolation(1007, INVALID_ARGUMENT)
                if self.vad.active:
                    await self._end_activity()

    async def _audio(self, blob: Mapping[str, Any]) -> None:
        pcm = b64_standard(str(blob.get("data", "")))[1]
        seconds = len(pcm) / 2 / rate_of(blob.get("mimeType"))
        vad = self.vad
        if not vad.auto:
            if vad.active:
                vad.speech_seconds += seconds
            return
        if loudest_sample(pcm) < vad.threshold:
            return  # silence: the timer ends the activity once the gap has passed
        now = trio.current_time()
        if not vad.active:
            vad.start(now, self.index)
            self._wake_timer()
            if self._busy() and self.interrupts:
                await self._barge_in()
        vad.speech_seconds += seconds
        vad.last_speech_at = now

    def _video(self, blob: Mapping[str, Any]) -> None:
        session = self.session
        assert session is not None
        if not session.has_video:
            session.has_video = True
            self._wake_timer()  # the shorter session limit applies from now on
        # The frame itself is not kept: only its place and cost in the context.
        content = {
            "role": "user",
            "parts": [{"inlineData": {"mimeType": blob.get("mimeType", "")}}],
        }
        self.state.append(content, IMAGE_TOKENS, "IMAGE")
        self._compress()

    async def _end_activity(self) -> None:
        """The user stopped speaking: transcribe, add to history, answer."""
        seconds = self.vad.end()
        label = audio_label(seconds)
        if self.input_transcription:
            await self.send(frames.input_transcription(label))
        self.state.add_user_text(label, audio_tokens(seconds), "AUDIO")
        self._compress()
        self._user_turn = "audio"

    async def _tool_response(self, body: Mapping[str, Any]) -> None:
        state = self.state
        session = self.session.id if self.session else None
        for response in body.get("functionResponses") or ():
            call_id = response.get("id")
            call = state.pending_calls.get(call_id) if isinstance(call_id, str) else None
            if call is None:
                self.core.log.note(
                    self.id,
                    session,
                    "ignored_tool_response",
                    f"{call_id!r}: no pending call with this id (unknown, late or cancelled)",
                )
                continue
            content = {"role": "user", "parts": [{"functionResponse": response}]}
            state.append(content, text_tokens(json.dumps(response)), "TEXT")
            if call.blocking:
                del state.pending_calls[call_id]
                if state.waiting is not None and call_id in state.waiting.call_ids:
                    state.waiting.responses[call_id] = response
                continue
            if not response.get("willContinue"):
                del state.pending_calls[call_id]
            inner = response.get("response")
            scheduling = enum_name(
                response.get("scheduling")
                or (inner.get("scheduling") if isinstance(inner, Mapping) else None)
                or "WHEN_IDLE",
                _SCHEDULING,
            )
            if scheduling == "SILENT":
                continue
            if scheduling == "INTERRUPT" and self._turn is not None:
                await self._barge_in()
            self._tool_turns.append(response)
        self._compress()

    def _context_update(self, body: Mapping[str, Any]) -> None:
        session = self.session
        assert session is not None
        config = dict(session.config)
        if "systemInstruction" in body:
            config["systemInstruction"] = body["systemInstruction"]
        if "tools" in body:
            config["tools"] = (body["tools"] or {}).get("tools", [])
            self.tools = declared_functions(config["tools"])
        session.config = config

    def _compress(self) -> None:
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

    async def _pump(self) -> None:
        """Start whatever should run next, or announce that the session is idle."""
        if self.closing or not self.setup_done or self._turn is not None:
            return
        state = self.state
        waiting = state.waiting
        starts = (waiting is not None and waiting.ready()) or (
            waiting is None and (self._user_turn is not None or bool(self._tool_turns))
        )
        if starts and self.compression is None and state.total_tokens > self.window:
            # The model is about to read a context larger than its window.
            await self.close(
                1007,
                f"The input token count ({state.total_tokens}) exceeds the maximum number of "
                f"tokens allowed ({self.window}).",
                cause="context_window",
            )
            return
        if waiting is not None:
            if waiting.ready():
                self._start_continuation()
            else:
                await self.announce_busy()
        elif self._user_turn is not None:
            self._start_user_turn()
        elif self._tool_turns:
            self._start_tool_turn()
        elif state.pending_calls:
            await self.announce_busy()
        else:
            await self._announce_idle()

    def _new_record(
        self, number: int, user_text: str, trigger: str, continuation: bool
    ) -> TurnRecord:
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
        self._open_records.append(record)
        return record

    def _start_user_turn(self) -> None:
        trigger = self._user_turn or "clientContent"
        self._user_turn = None
        state = self.state
        state.turn += 1
        taken = state.take_input()
        user_text = " ".join(taken)
        record = self._new_record(state.turn, user_text, trigger, False)
        self._launch(RunningTurn(state.turn, user_text, taken, trigger, record, dict(state.tokens)))

    def _start_continuation(self) -> None:
        state = self.state
        waiting = state.waiting
        assert waiting is not None
        state.waiting = None
        results = tuple(waiting.responses[i] for i in waiting.call_ids)
        record = self._waiting_record
        if record is None or record.turn != waiting.turn or record.outcome is not None:
            record = self._new_record(waiting.turn, waiting.user_text, "toolResponse", True)
        self._waiting_record = None
        taken = [waiting.user_text] if waiting.user_text else []
        turn = RunningTurn(
            waiting.turn,
            waiting.user_text,
            taken,
            "toolResponse",
            record,
            dict(state.tokens),
            tool_results=results,
            continuation=True,
        )
        self._launch(turn)

    def _start_tool_turn(self) -> None:
        result = self._tool_turns.pop(0)
        state = self.state
        state.turn += 1
        record = self._new_record(state.turn, "", "toolResponse", False)
        turn = RunningTurn(
            state.turn, "", [], "toolResponse", record, dict(state.tokens), tool_results=(result,)
        )
        self._launch(turn)

    def _launch(self, turn: RunningTurn) -> None:
        assert self._nursery is not None
        self._turn = turn
        self._nursery.start_soon(self._turn_task, turn)

    async def _turn_task(self, turn: RunningTurn) -> None:
        try:
            await run_turn(self, turn)
        except Exception as exc:
            self._turn_ended(turn)
            await self._internal_error(exc)
            return
        finally:
            self._turn_ended(turn)
        if not self.closing and not turn.interrupted:
            await self._pump()

    def _turn_ended(self, turn: RunningTurn) -> None:
        if self._turn is turn:
            self._turn = None
        if turn.done.is_set():
            return
        if turn.outcome == "waiting":
            self._waiting_record = turn.record
        elif turn.outcome is None and not turn.interrupted:
            self.cut(turn)
        turn.done.set()

    def turn_completed(self, turn: RunningTurn) -> None:
        """``turnComplete`` went out: the answer joins the history."""
        content, tokens = reply_content(turn, self.modality)
        self.state.append(content, tokens, self.modality)
        self._compress()
        self._settle(turn.record, "completed")

    async def _barge_in(self) -> None:
        """Client input while the model is busy: ``interrupted`` → cancellations → turnComplete."""
        state = self.state
        turn = self._turn
        usage: dict[str, Any] = {}
        record: TurnRecord | None = None
        number: int | None = None
        if turn is not None:
            if turn.finishing:
                await turn.done.wait()  # generationComplete is out: let the turn complete
            else:
                turn.interrupt()
                await turn.done.wait()
                if turn.outcome != "completed":
                    if turn.record.reply:
                        # Only what the client already got stays in the history.
                        content, tokens = reply_content(turn, self.modality)
                        state.append(content, tokens, self.modality)
                    usage = turn.usage()
                    record = turn.record
                    number = turn.number
        waiting = state.waiting
        if number is None:
            if waiting is None:
                return
            number = waiting.turn
        if record is None:
            record = self._waiting_record
            if record is None or record.turn != number or record.outcome is not None:
                user_text = waiting.user_text if waiting is not None else ""
                record = self._new_record(number, user_text, "toolResponse", True)
        cancelled: list[str] = []
        if waiting is not None and waiting.turn == number:
            cancelled = [i for i in waiting.call_ids if i not in waiting.responses]
            state.waiting = None
        for call_id in cancelled:
            state.pending_calls.pop(call_id, None)
        self._waiting_record = None
        await self.send(frames.INTERRUPTED)
        if cancelled:
            await self.send(frames.tool_call_cancellation(cancelled))
        await self.send(frames.turn_complete(usage))
        self._settle(record, "interrupted")

    # -- resumption updates ----------------------------------------------------------------

    async def announce_busy(self) -> None:
        """The session is not resumable now: ``{}`` (once per busy period, per_turn mode)."""
        if not self.resumption or self.options.handle_mode != "per_turn":
            return
        if self._announced == "busy":
            return
        self._announced = "busy"
        await self.send(frames.NOT_RESUMABLE)

    async def _announce_idle(self) -> None:
        """The session is idle: a fresh handle to a snapshot of it (per_turn mode)."""
        if not self.resumption or self.options.handle_mode != "per_turn":
            return
        if self._announced == "idle":
            return
        self._announced = "idle"
        assert self.session is not None
        # A spoken turn in progress is not consumed yet: a transparent client replays it.
        consumed = self.vad.start_index - 1 if self.vad.active else self.index
        handle = self.core.registry.issue(self.session, self.state.copy(), consumed)
        await self.send(frames.resumption_update(handle, consumed if self.transparent else None))

    # -- timers ----------------------------------------------------------------------------

    def _wake_timer(self) -> None:
        if self._timer_scope is not None:
            self._timer_scope.cancel()

    def _session_deadline(self) -> float:
        session = self.session
        if not self.setup_done or session is None or self.compression is not None:
            return math.inf
        options = self.options
        limit = options.video_session_limit if session.has_video else options.audio_session_limit
        if limit is None:
            return math.inf
        return self._setup_at + options.scaled(limit) - session.used_seconds

    async def _timers(self) -> None:
        """GoAway, the end of the lifetime, the session limit and the end of spoken turns."""
        options = self.options
        end_at = goaway_at = math.inf
        if options.connection_lifetime is not None:
            lifetime = options.scaled(options.connection_lifetime)
            end_at = self.opened_at + lifetime
            lead = min(options.scaled(options.goaway_before), lifetime)
            if lead > 0:
                goaway_at = end_at - lead
        while not self.closing:
            session_end = self._session_deadline()
            deadline = min(
                end_at,
                session_end,
                self.vad.deadline,
                goaway_at if not self._goaway_sent else math.inf,
            )
            with trio.CancelScope() as self._timer_scope:
                await trio.sleep_until(deadline)
            self._timer_scope = None
            now = trio.current_time()
            if now >= end_at:
                code, reason = options.lifetime_close
                await self.close(code, reason, cause="lifetime")
                return
            if now >= session_end and now >= self._session_deadline():
                assert self.session is not None
                self.session.terminated = True
                await self.close(1011, DEADLINE_REASON, cause="session_limit")
                return
            if not self._goaway_sent and now >= goaway_at:
                self._goaway_sent = True
                # The planned lead, not "end_at - now": a timer a hair late must not turn
                # "10s" into "9.998734s".
                await self.send(frames.go_away(end_at - goaway_at))
            if now >= self.vad.deadline:
                await self._end_activity()
                await self._pump()
