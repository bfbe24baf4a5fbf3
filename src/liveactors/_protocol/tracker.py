"""Server messages -> typed events, with turn tracking (sans-IO, spans connections).

Theory of operation. A conversation is a sequence of model turns numbered from 1. Every event
carries the number of the turn it belongs to; between turns (after a ``turnComplete``) events
carry the number of the next turn. A turn moves through three phases::

    IDLE --model output / toolCall--> GENERATING --toolCall(blocking)--> AWAITING_TOOL
      ^                                    |  ^                               |
      |                                    |  +------- toolResponse ----------+
      +------------- turnComplete ---------+

The tracker also remembers the latest *resumable* handle: an update with ``resumable: false`` or
without a handle never erases it, because resuming from the last good handle loses less than
starting over. ``seq`` numbers every event of the conversation, gap-free, across connections;
the supervisor's own events (Connected, Reconnecting...) are numbered here too via :meth:`emit`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs
from google.genai import types

from .. import events as ev
from .._errors import ProtocolError
from ._wire import b64decode, parse_duration, parse_int64
from .decode import validate

__all__ = ["EventTracker", "TurnPhase"]


class TurnPhase(enum.Enum):
    """Where the model is in its current turn."""

    IDLE = "idle"
    GENERATING = "generating"
    AWAITING_TOOL = "awaiting_tool"


# Vertex spells two usage fields differently; google-genai renames them on the way in.
_USAGE_RENAMES = {
    "candidatesTokenCount": "responseTokenCount",
    "candidatesTokensDetails": "responseTokensDetails",
}


@attrs.define
class EventTracker:
    """Turns server messages into events and tracks turn phase, tool calls and the handle."""

    conversation: str
    #: Names of functions declared NON_BLOCKING: their calls do not pause the turn.
    non_blocking: frozenset[str] = frozenset()
    seq: int = 0
    turn: int = 1
    phase: TurnPhase = TurnPhase.IDLE
    #: Latest handle that came with ``resumable: true``. Never erased by a non-resumable update.
    handle: str | None = attrs.field(default=None, repr=False)
    #: Whether the most recent update said the session was resumable at that point.
    resumable: bool = False
    #: Number of resumable updates received (across connections).
    handles_received: int = 0
    #: Calls the model is waiting on, by id (blocking and non-blocking).
    pending_calls: dict[str, types.FunctionCall] = attrs.field(factory=dict)
    turns_completed: int = 0
    #: The current turn was interrupted (barge-in), possibly in an earlier message.
    interrupted: bool = False
    #: Output seen in the current turn (text / transcript), for transcripts and history restore.
    turn_text: list[str] = attrs.field(factory=list)
    usage: types.UsageMetadata | None = None
    #: The service said ``interactionStatus: IN_PROGRESS``: the model goes on after its turn
    #: (extended thinking, a running tool), so a turnComplete is not an idle point.
    model_busy: bool = False

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def emit(self, cls: type[ev.Event], **fields: Any) -> ev.Event:
        """Number a locally made event (Connected, Reconnecting...) in the same sequence."""
        return cls(conversation=self.conversation, seq=self._next(), turn=self.turn, **fields)

    @property
    def awaiting_tool(self) -> bool:
        """Whether a blocking call is unanswered (the turn cannot finish without a response)."""
        return any(call.name not in self.non_blocking for call in self.pending_calls.values())

    def tool_responded(self, ids: list[str]) -> None:
        """Record that responses for ``ids`` went out."""
        for call_id in ids:
            self.pending_calls.pop(call_id, None)
        if self.phase is TurnPhase.AWAITING_TOOL and not self.awaiting_tool:
            self.phase = TurnPhase.GENERATING

    def session_restarted(self) -> None:
        """A new connection whose service state predates the pending calls (a fresh session,
        or a resume whose handle does not hold the cut turn): the turn is regenerated and asks
        again, with new call ids."""
        self.pending_calls.clear()
        self.phase = TurnPhase.IDLE

    def forget_handle(self) -> None:
        """The service refused the handle: nothing is left to resume from."""
        self.handle = None

    def connection_lost(self) -> list[ev.Event]:
        """Close the turn in progress when its connection died; its input is answered again."""
        if self.phase is TurnPhase.IDLE:
            return []
        out: list[ev.Event] = [self.emit(ev.Interrupted)]
        out.append(self.emit(ev.TurnComplete, reason="CONNECTION_LOST", interrupted=True))
        self._end_turn()
        return out

    def _end_turn(self) -> None:
        self.turn += 1
        self.turns_completed += 1
        self.phase = TurnPhase.IDLE
        self.interrupted = False
        self.turn_text = []

    def events(self, message: Mapping[str, Any]) -> list[ev.Event]:
        """All events of one parsed server message, in a fixed order: content, tool calls,
        usage, turn end, resumption update, goAway."""
        out: list[ev.Event] = []
        content = message.get("serverContent")
        turn_complete: Mapping[str, Any] | None = None
        if content is not None:
            if not isinstance(content, Mapping):
                raise ProtocolError("serverContent must be an object")
            self._content(content, out)
            if content.get("turnComplete"):
                turn_complete = content
        calls = message.get("toolCall")
        if calls is not None:
            self._tool_call(calls, out)
        cancelled = message.get("toolCallCancellation")
        if cancelled is not None:
            self._cancellation(cancelled, out)
        usage = message.get("usageMetadata")
        if usage is not None:
            self._usage(usage, out)
        if turn_complete is not None:
            reason = turn_complete.get("turnCompleteReason")
            # ``interrupted`` usually comes in a message of its own before turnComplete.
            interrupted = self.interrupted or bool(turn_complete.get("interrupted"))
            status, waiting = self._interaction(turn_complete)
            out.append(
                self.emit(
                    ev.TurnComplete,
                    reason=str(reason) if reason is not None else None,
                    interrupted=interrupted,
                    interaction_status=status,
                    waiting_for_input=waiting,
                )
            )
            self._end_turn()
        elif content is not None and (
            "interactionStatus" in content or content.get("waitingForInput")
        ):
            status, waiting = self._interaction(content)
            out.append(self.emit(ev.InteractionStatus, status=status, waiting_for_input=waiting))
        update = message.get("sessionResumptionUpdate")
        if update is not None:
            self._resumption(update, out)
        go_away = message.get("goAway")
        if go_away is not None:
            if not isinstance(go_away, Mapping):
                raise ProtocolError("goAway must be an object")
            left = go_away.get("timeLeft")
            out.append(self.emit(ev.GoAway, time_left=parse_duration(left) if left else 0.0))
        for key in ("voiceActivity", "voiceActivityDetectionSignal"):
            activity = message.get(key)
            if isinstance(activity, Mapping):
                kind = (
                    activity.get("type")
                    or activity.get("voiceActivityType")
                    or activity.get("vadSignalType")
                    or ""
                )
                offset = activity.get("audioOffset")
                out.append(
                    self.emit(
                        ev.VoiceActivity,
                        kind=str(kind),
                        raw=dict(activity),
                        audio_offset=parse_duration(offset) if offset is not None else None,
                    )
                )
        return out

    def _interaction(self, content: Mapping[str, Any]) -> tuple[str | None, bool]:
        """``interactionStatus`` and ``waitingForInput`` of a serverContent; IN_PROGRESS marks
        the model busy after its turn, IDLE frees it."""
        status = content.get("interactionStatus")
        if status is not None:
            self.model_busy = status == "IN_PROGRESS"
        return (str(status) if status is not None else None), bool(content.get("waitingForInput"))

    def _content(self, content: Mapping[str, Any], out: list[ev.Event]) -> None:
        model_turn = content.get("modelTurn")
        if model_turn is not None:
            if not isinstance(model_turn, Mapping):
                raise ProtocolError("serverContent.modelTurn must be an object")
            parts = model_turn.get("parts")
            if parts is None:
                parts = []
            elif not isinstance(parts, list):
                raise ProtocolError("serverContent.modelTurn.parts must be a list")
            if parts and self.phase is TurnPhase.IDLE:
                self.phase = TurnPhase.GENERATING
            for part in parts:
                self._part(part, out)
        transcript = content.get("interimInputTranscription")
        if transcript is not None:
            text = _text_of(transcript, "interimInputTranscription")
            if text:
                out.append(self.emit(ev.InputTranscript, text=text, interim=True))
        transcript = content.get("inputTranscription")
        if transcript is not None:
            text = _text_of(transcript, "inputTranscription")
            if text:
                out.append(self.emit(ev.InputTranscript, text=text))
        transcript = content.get("outputTranscription")
        if transcript is not None:
            text = _text_of(transcript, "outputTranscription")
            if text:
                if self.phase is TurnPhase.IDLE:
                    self.phase = TurnPhase.GENERATING
                self.turn_text.append(text)
                out.append(self.emit(ev.OutputTranscript, text=text))
        grounding = content.get("groundingMetadata")
        url_context = content.get("urlContextMetadata")
        if grounding is not None or url_context is not None:
            out.append(
                self.emit(
                    ev.Grounding,
                    grounding_metadata=None
                    if grounding is None
                    else validate(types.GroundingMetadata, grounding, "groundingMetadata"),
                    url_context_metadata=None
                    if url_context is None
                    else validate(types.UrlContextMetadata, url_context, "urlContextMetadata"),
                )
            )
        if content.get("interrupted"):
            self.interrupted = True
            out.append(self.emit(ev.Interrupted))
        if content.get("generationComplete"):
            out.append(self.emit(ev.GenerationComplete))

    def _part(self, part: Any, out: list[ev.Event]) -> None:
        if type(part) is not dict:
            raise ProtocolError("a modelTurn part must be an object")
        # A part holds one kind of data; other keys (unknown fields, thoughtSignature, an
        # explicit ``thought: false``) are metadata and do not change what it is.
        text = part.get("text")
        if text is not None and not part.get("thought"):
            if not isinstance(text, str):
                raise ProtocolError("part.text must be a string")
            self.turn_text.append(text)
            self.seq += 1  # positional: the hottest events skip emit()'s keyword packing
            out.append(ev.TextDelta(self.conversation, self.seq, self.turn, text))
            return
        blob = part.get("inlineData")
        if blob is not None and isinstance(blob, Mapping) and not part.get("thought"):
            mime = blob.get("mimeType", "")
            if isinstance(mime, str) and mime.startswith("audio/"):
                data = blob.get("data", "")
                if not isinstance(data, str):
                    raise ProtocolError("inlineData.data must be a base64 string")
                self.seq += 1
                out.append(
                    ev.AudioChunk(self.conversation, self.seq, self.turn, b64decode(data), mime)
                )
                return
            if isinstance(mime, str) and mime.startswith("video/"):
                data = blob.get("data", "")
                if not isinstance(data, str):
                    raise ProtocolError("inlineData.data must be a base64 string")
                video = b64decode(data)
                out.append(
                    self.emit(ev.VideoChunk, data=video, mime_type=mime, init=_is_init(video))
                )
                return
        out.append(self.emit(ev.ModelPart, part=validate(types.Part, part, "modelTurn part")))

    def _tool_call(self, calls: Any, out: list[ev.Event]) -> None:
        if not isinstance(calls, Mapping):
            raise ProtocolError("toolCall must be an object")
        raw = calls.get("functionCalls") or []
        if not isinstance(raw, list):
            raise ProtocolError("toolCall.functionCalls must be a list")
        parsed = tuple(validate(types.FunctionCall, c, "toolCall.functionCalls[]") for c in raw)
        for call in parsed:
            if call.id:
                self.pending_calls[call.id] = call
        if self.awaiting_tool:
            self.phase = TurnPhase.AWAITING_TOOL
        elif self.phase is TurnPhase.IDLE and parsed:
            self.phase = TurnPhase.GENERATING
        out.append(self.emit(ev.ToolCall, calls=parsed))

    def _cancellation(self, cancelled: Any, out: list[ev.Event]) -> None:
        if not isinstance(cancelled, Mapping):
            raise ProtocolError("toolCallCancellation must be an object")
        ids = cancelled.get("ids") or []
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ProtocolError("toolCallCancellation.ids must be a list of strings")
        self.tool_responded(ids)
        out.append(self.emit(ev.ToolCallCancelled, ids=tuple(ids)))

    def _usage(self, usage: Any, out: list[ev.Event]) -> None:
        if not isinstance(usage, Mapping):
            raise ProtocolError("usageMetadata must be an object")
        if any(k in usage for k in _USAGE_RENAMES):
            usage = {_USAGE_RENAMES.get(k, k): v for k, v in usage.items()}
        metadata = validate(types.UsageMetadata, usage, "usageMetadata")
        self.usage = metadata
        out.append(self.emit(ev.Usage, metadata=metadata))

    def _resumption(self, update: Any, out: list[ev.Event]) -> None:
        if not isinstance(update, Mapping):
            raise ProtocolError("sessionResumptionUpdate must be an object")
        handle = update.get("newHandle") or None
        if handle is not None and not isinstance(handle, str):
            raise ProtocolError("sessionResumptionUpdate.newHandle must be a string")
        resumable = bool(update.get("resumable"))
        index = update.get("lastConsumedClientMessageIndex")
        consumed = parse_int64(index) if index is not None else None
        self.resumable = resumable and handle is not None
        if self.resumable:
            self.handle = handle
            self.handles_received += 1
        out.append(
            self.emit(
                ev.ResumptionUpdate,
                handle=handle,
                resumable=resumable,
                last_consumed_client_message_index=consumed,
            )
        )


def _is_init(data: bytes) -> bool:
    """Whether an MP4 fragment is an initialisation segment: it opens with an ``ftyp`` box
    (media segments open with ``styp``, ``moof`` or ``sidx``)."""
    return data[4:8] == b"ftyp"


def _text_of(transcript: Any, where: str) -> str:
    if not isinstance(transcript, Mapping):
        raise ProtocolError(f"{where} must be an object")
    text = transcript.get("text", "")
    if not isinstance(text, str):
        raise ProtocolError(f"{where}.text must be a string")
    return text
