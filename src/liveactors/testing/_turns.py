"""One model turn: ask the responder, then play its reply in the order the service uses.

``chunks → (outputTranscription per chunk in AUDIO) → generationComplete → turnComplete +
usageMetadata``. On the 3.x models a chunk of speech is one message with several audio parts
and its transcript (``audio_parts``, ``transcript_with_audio``); a live avatar's chunk is
fragmented MP4 (``_avatar``); ``pace_audio`` plays output at ``audio_speed`` times real time.

A blocking function call pauses the turn (the session's ``waiting`` state) and the task ends;
the connection starts a continuation with the same turn number once every call has its
response.

A barge-in calls :meth:`RunningTurn.interrupt`: the turn stops at its next step, and any wait it
is in (latency, pacing, a :class:`Pause`, an async responder) is cancelled. A message being
written is never cut in half, which is why sends are not inside a cancellable scope: that also
saves a cancel scope per message. The connection then sends ``interrupted`` /
``toolCallCancellation`` / ``turnComplete`` itself.

Once ``generationComplete`` is on its way the turn is ``finishing``: a barge-in lets it send
``turnComplete`` rather than interrupting a turn the client already saw finish.
"""

from __future__ import annotations

import inspect
import json
from typing import TYPE_CHECKING, Any

import attrs
import trio

from . import _frames as frames
from ._audio import audio_message, frame_seconds
from ._avatar import bitrate_of, init_segment, media_segment, video_message
from ._log import TurnRecord
from ._model import (
    CallTool,
    CloseConnection,
    DropConnection,
    Hold,
    Pause,
    Say,
    SendMessage,
    SendPart,
    TurnContext,
    WaitForInput,
    coerce_reply,
    split_text,
)
from ._model_checks import behavior_name
from ._state import PendingCall, Waiting
from ._tokens import audio_tokens, text_tokens, usage_metadata

if TYPE_CHECKING:
    from ._session import Connection

__all__ = ["ResponderError", "RunningTurn", "run_turn"]


class ResponderError(Exception):
    """The responder asked for something impossible (an undeclared function, ...)."""


@attrs.define(eq=False)
class RunningTurn:
    """A model turn being generated on one connection."""

    number: int
    user_text: str
    #: The pending input this turn took; given back if the connection ends mid-turn.
    taken: list[str]
    trigger: str
    record: TurnRecord
    #: Context tokens per modality when the turn started (``promptTokenCount``).
    prompt: dict[str, int]
    tool_results: tuple[Any, ...] = ()
    continuation: bool = False
    done: trio.Event = attrs.field(factory=trio.Event)
    #: The scope of the wait the turn is in, if any (what an interruption cancels).
    wait_scope: trio.CancelScope | None = None
    response: dict[str, int] = attrs.field(factory=dict)
    #: None while generating, then "completed", "waiting" (paused on blocking calls) or "cut".
    outcome: str | None = None
    interrupted: bool = False
    finishing: bool = False
    #: Its ``turnComplete`` is being written: whether the turn was answered depends on that
    #: write, not on a drop that happens during it.
    writing_turn_complete: bool = False
    #: Seconds of audio (or avatar video) sent, and when the first went out (pacing).
    played: float = 0.0
    play_start: float | None = None
    #: Avatar video fragments sent in this turn.
    segments: int = 0

    def usage(self) -> dict[str, Any]:
        """``usageMetadata`` for this turn so far."""
        return usage_metadata(self.prompt, self.response)

    def interrupt(self) -> None:
        """Stop at the next step; cancel the current wait."""
        self.interrupted = True
        if self.wait_scope is not None:
            self.wait_scope.cancel()

    async def sleep(self, seconds: float) -> bool:
        """Wait inside the turn; False if the turn was interrupted."""
        with trio.CancelScope() as self.wait_scope:
            await trio.sleep(seconds)
        self.wait_scope = None
        return not self.interrupted


async def run_turn(conn: Connection, turn: RunningTurn) -> None:
    """Generate ``turn`` on ``conn``; returns when it completed, paused on calls, was
    interrupted, or the connection ended."""
    options = conn.options
    await conn.announce_busy()
    latency = 0.0 if turn.continuation else options.response_latency
    if latency and not await turn.sleep(latency):
        return
    reply: Any = conn.core.responder(conn.context_for(turn))
    if inspect.isawaitable(reply):
        with trio.CancelScope() as turn.wait_scope:
            reply = await reply
        turn.wait_scope = None
    if turn.interrupted:
        return
    steps = coerce_reply(reply)
    calls: list[CallTool] = []
    first_chunk = True
    for step in steps:
        if isinstance(step, CallTool):
            calls.append(step)
            continue
        if calls:
            if await _call_tools(conn, turn, calls):
                return
            calls = []
        if isinstance(step, Say):
            for piece in split_text(step.text, options.chunks):
                pace = 0.0 if first_chunk else options.chunk_delay
                if pace and not await turn.sleep(pace):
                    return
                first_chunk = False
                if turn.interrupted or not await _say(conn, turn, piece):
                    return
        elif isinstance(step, Pause):
            if not await turn.sleep(step.seconds):
                return
        elif isinstance(step, Hold):
            with trio.CancelScope() as turn.wait_scope:
                await step.until()
            turn.wait_scope = None
            if turn.interrupted:
                return
        elif turn.interrupted:
            return
        elif isinstance(step, SendPart):
            if not await conn.send(frames.model_part(step.part)):
                return
        elif isinstance(step, SendMessage):
            if not await conn.send(frames.raw(step.message)):
                return
        elif isinstance(step, CloseConnection):
            await conn.close(step.code, step.reason, cause="responder")
            return
        elif isinstance(step, DropConnection):
            await conn.drop(cause="responder")
            return
        elif isinstance(step, WaitForInput):
            await _finish(conn, turn, {"turnCompleteReason": step.reason, "waitingForInput": True})
            return
    if calls and await _call_tools(conn, turn, calls):
        return
    if not turn.interrupted:
        await _finish(conn, turn)


async def _say(conn: Connection, turn: RunningTurn, piece: str) -> bool:
    """One chunk of speech, text or avatar video; False when the connection is gone."""
    if conn.modality == "TEXT":
        if not await conn.send(frames.text_chunk(piece)):
            return False
        turn.response["TEXT"] = turn.response.get("TEXT", 0) + text_tokens(piece)
        turn.record.reply.append(piece)
        return True
    behaviour = conn.behaviour
    seconds = conn.options.audio_chunk_seconds
    parts = behaviour.audio_parts
    together = conn.output_transcription and behaviour.transcript_with_audio
    played = frame_seconds(seconds) * parts
    if not await _pace(conn, turn):
        return False
    if conn.modality == "VIDEO":
        segments = [init_segment()] if turn.segments == 0 else []
        turn.segments += 1
        config = conn.session.config if conn.session is not None else {}
        bitrate = bitrate_of(config.get("avatarConfig"))
        segments.append(media_segment(turn.segments, turn.played, played, bitrate))
        frame = video_message(segments, piece if conn.output_transcription else None)
    else:
        frame = audio_message(seconds, parts, piece if together else None)
    if not await conn.send(frame):
        return False
    turn.played += played
    modality = conn.modality
    turn.response[modality] = turn.response.get(modality, 0) + audio_tokens(played)
    turn.record.reply.append(piece)
    if conn.output_transcription and not together and conn.modality == "AUDIO":
        return await conn.send(frames.output_transcription(piece))
    return True


async def _pace(conn: Connection, turn: RunningTurn) -> bool:
    """``pace_audio``: wait until what was sent has played at ``audio_speed``; False if the
    turn was interrupted meanwhile."""
    if not conn.options.pace_audio:
        return True
    now = trio.current_time()
    if turn.play_start is None:
        turn.play_start = now
        return True
    due = turn.play_start + turn.played / conn.options.audio_speed
    if due > now:
        return await turn.sleep(due - now)
    return True


async def _call_tools(conn: Connection, turn: RunningTurn, calls: list[CallTool]) -> bool:
    """Send one ``toolCall``; True when the turn must pause (blocking calls) or stop."""
    if turn.interrupted:
        return True
    state = conn.state
    payload: list[dict[str, Any]] = []
    blocking: list[str] = []
    for call in calls:
        declaration = conn.tools.get(call.name)
        if declaration is None:
            raise ResponderError(
                f"the responder called {call.name!r}, which the session does not declare"
            )
        call_id = call.id or conn.core.next_call_id()
        behavior = behavior_name(declaration.get("behavior"))
        # gemini-3.8-live runs a declaration without ``behavior`` NON_BLOCKING.
        is_blocking = behavior == "BLOCKING" or (
            behavior != "NON_BLOCKING" and not conn.model.non_blocking_default
        )
        function_call: dict[str, Any] = {"id": call_id, "name": call.name}
        if call.args:
            function_call["args"] = dict(call.args)
        payload.append(function_call)
        state.pending_calls[call_id] = PendingCall(
            call_id, call.name, dict(call.args), turn.number, is_blocking
        )
        if is_blocking:
            blocking.append(call_id)
    # State first: the response may be read before this task runs again.
    content = {"role": "model", "parts": [{"functionCall": fc} for fc in payload]}
    entry = state.append(content, text_tokens(json.dumps(payload)), "TEXT")
    if blocking:
        state.waiting = Waiting(turn.number, turn.user_text, tuple(blocking))
        turn.outcome = "waiting"
    if not await conn.send(frames.tool_call(payload)):
        # The connection is gone: the client never saw these calls.
        for function_call in payload:
            state.pending_calls.pop(function_call["id"], None)
        state.discard(entry)
        if blocking:
            state.waiting = None
            turn.outcome = None
        return True
    for function_call in payload:
        turn.record.tool_calls.append(function_call["id"])
    return bool(blocking)


async def _finish(conn: Connection, turn: RunningTurn, extra: dict[str, Any] | None = None) -> None:
    """``generationComplete`` then ``turnComplete`` + usage: the turn is answered."""
    turn.finishing = True
    if not await conn.send(frames.GENERATION_COMPLETE):
        return

    def answered() -> None:
        turn.outcome = "completed"
        conn.turn_completed(turn)

    turn.writing_turn_complete = True
    try:
        sent = await conn.send(conn.turn_complete_frame(turn.usage(), extra), on_sent=answered)
    finally:
        turn.writing_turn_complete = False
    if not sent and turn.outcome is None and not turn.interrupted:
        conn.cut(turn)  # the write failed: the turn's input is unanswered


def reply_content(turn: RunningTurn, modality: str) -> tuple[dict[str, Any], int]:
    """What the model said in ``turn`` as a history ``Content`` and its token count."""
    text = turn.record.reply_text
    content = {"role": "model", "parts": [{"text": text}]}
    return content, turn.response.get(modality, 0) or text_tokens(text)


def context_for(conn: Connection, turn: RunningTurn) -> TurnContext:
    """The responder's view of ``turn``."""
    session = conn.session
    assert session is not None
    return TurnContext(
        session_id=session.id,
        connection=conn.id,
        turn=turn.number,
        user_text=turn.user_text,
        trigger=turn.trigger,
        modality=conn.modality,
        history=tuple(entry.content for entry in conn.state.history),
        tools=conn.tools,
        config=session.config,
        tool_results=turn.tool_results,
    )
