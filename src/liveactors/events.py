"""Typed events that a conversation publishes to its subscribers.

Every server message becomes one or more events, and every change of the connection (connected,
going away, reconnecting, failed, closed) becomes one too. All events are frozen attrs values
carrying:

* ``conversation``: the name of the conversation that published it;
* ``seq``: gap-free and increasing per conversation, continuing across reconnects, so a
  subscriber can tell whether it missed anything;
* ``turn``: the number of the model turn the event belongs to (1 for the first answer). Audio of
  an interrupted turn keeps that turn's number, so a player can drop whatever it still holds of
  that turn once it sees :class:`Interrupted`.

Resumption handles are secrets: they never show in a ``repr``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from google.genai import types

    from ._errors import LiveError

__all__ = [
    "AudioChunk",
    "Connected",
    "ConversationClosed",
    "ConversationFailed",
    "Event",
    "GenerationComplete",
    "GoAway",
    "Grounding",
    "HistoryRestored",
    "InputTranscript",
    "InputUndelivered",
    "InteractionStatus",
    "Interrupted",
    "ModelPart",
    "OutputTranscript",
    "Reconnecting",
    "ReplayTrimmed",
    "ResumptionUpdate",
    "TextDelta",
    "ToolCall",
    "ToolCallCancelled",
    "TurnComplete",
    "Usage",
    "VideoChunk",
    "VoiceActivity",
]


def _redacted(value: object) -> str:
    return "'<redacted>'" if value else repr(value)


@attrs.frozen
class Event:
    """Base of every event: who published it, its place in the stream, and its model turn."""

    conversation: str
    seq: int
    turn: int


@attrs.frozen
class Connected(Event):
    """A connection finished setup; ``resumed`` says whether it carried the session on."""

    session_id: str | None
    resumed: bool
    connection: int


@attrs.frozen
class TextDelta(Event):
    """A chunk of model text (TEXT modality)."""

    text: str


@attrs.frozen
class AudioChunk(Event):
    """A chunk of model audio: raw 16-bit little-endian PCM, normally 24 kHz mono."""

    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")
    mime_type: str = "audio/pcm;rate=24000"


@attrs.frozen
class InputTranscript(Event):
    """A piece of the transcript of what the user said (input audio transcription).

    ``interim`` marks a provisional transcript (``interimInputTranscription``, sent by the
    transcription models while the user still speaks); the final one follows with
    ``interim=False`` and replaces the interim pieces.
    """

    text: str
    interim: bool = False


@attrs.frozen
class OutputTranscript(Event):
    """A piece of the transcript of what the model said (output audio transcription)."""

    text: str


@attrs.frozen
class VideoChunk(Event):
    """A piece of model video (a live avatar on Vertex AI): fragmented MP4, H.264 + AAC.

    ``init`` marks an initialisation segment (``ftyp``/``moov``), which comes first and which a
    player (Media Source Extensions, ffmpeg) needs before the media segments that follow.
    """

    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")
    mime_type: str = "video/mp4"
    init: bool = False


@attrs.frozen
class ModelPart(Event):
    """A model part that is neither text nor audio: code execution, thoughts, files, ..."""

    part: types.Part


@attrs.frozen
class Grounding(Event):
    """Grounding or URL-context metadata that came with the model's output."""

    grounding_metadata: types.GroundingMetadata | None
    url_context_metadata: types.UrlContextMetadata | None


@attrs.frozen
class GenerationComplete(Event):
    """The model finished generating this turn (never sent for an interrupted turn)."""


@attrs.frozen
class TurnComplete(Event):
    """The turn is over. ``reason`` is the service's ``turnCompleteReason`` when it gave one.

    ``interrupted`` is true when the turn ended by barge-in or by a lost connection; a lost
    connection's turn is answered again after the reconnect, under a new turn number.
    """

    reason: str | None = None
    interrupted: bool = False
    #: ``interactionStatus`` when the service sent one: ``"IDLE"``, or ``"IN_PROGRESS"`` when
    #: the model goes on after this turn (extended thinking, a running tool).
    interaction_status: str | None = None
    #: ``waitingForInput``: the model waits for the user before it says more.
    waiting_for_input: bool = False


@attrs.frozen
class InteractionStatus(Event):
    """The model's ``interactionStatus`` (``IN_PROGRESS`` / ``IDLE``) or ``waitingForInput``,
    sent outside a ``turnComplete`` (with one, they are fields of :class:`TurnComplete`)."""

    status: str | None
    waiting_for_input: bool = False


@attrs.frozen
class Interrupted(Event):
    """User activity (or a lost connection) cut the model off: flush playback of this turn."""


@attrs.frozen
class ToolCall(Event):
    """The model asks for these function calls; answer with ``send_tool_response``."""

    calls: tuple[types.FunctionCall, ...]


@attrs.frozen
class ToolCallCancelled(Event):
    """The model withdrew these calls: do not answer them; undo side effects if possible."""

    ids: tuple[str, ...]


@attrs.frozen
class GoAway(Event):
    """The service will close this connection in ``time_left`` seconds; a handoff follows."""

    time_left: float


@attrs.frozen
class ResumptionUpdate(Event):
    """The service sent a resumption update; the handle itself is never shown in a repr."""

    handle: str | None = attrs.field(repr=_redacted)
    resumable: bool
    last_consumed_client_message_index: int | None = None


@attrs.frozen
class Usage(Event):
    """Token accounting for the turn (or the part of it) that just finished."""

    metadata: types.UsageMetadata


@attrs.frozen
class VoiceActivity(Event):
    """Server-side voice activity (``ACTIVITY_START`` / ``ACTIVITY_END``) where models send it."""

    kind: str
    raw: dict[str, Any] = attrs.field(factory=dict, repr=False)
    #: Where in the input audio the activity was detected (``audioOffset``), in seconds.
    audio_offset: float | None = None


@attrs.frozen
class Reconnecting(Event):
    """The connection ended; the supervisor reconnects after ``delay`` seconds (attempt n)."""

    reason: str
    attempt: int
    delay: float


@attrs.frozen
class HistoryRestored(Event):
    """The resumption handle was refused, so a fresh session was started and the transcript so
    far (``turns`` contents) was sent to it as history."""

    turns: int


@attrs.frozen
class ReplayTrimmed(Event):
    """A reconnect sent the input the service may have lost without its oldest realtime media:
    ``chunks`` audio / video chunks, ``seconds`` of the stream (by when they were sent), older
    than the replay window. Long realtime streams keep only that window for replay, so a
    microphone streaming through minutes of silence does not grow memory or replay minutes of
    it. Text, ``clientContent`` and tool responses are never trimmed."""

    chunks: int
    seconds: float


@attrs.frozen
class InputUndelivered(Event):
    """The conversation ended without delivering this acknowledged input: it is handed back
    rather than dropped. ``commands`` are the wire messages (``clientContent``,
    ``realtimeInput``...) in the order they were sent: input still queued when a stop's grace
    ran out or the orchestrator shut down, and questions sent that were never answered (their
    connection was lost). Published just before :class:`ConversationClosed`."""

    commands: tuple[dict[str, Any], ...] = attrs.field(
        repr=lambda commands: f"<{len(commands)} message{'' if len(commands) == 1 else 's'}>"
    )


@attrs.frozen
class ConversationFailed(Event):
    """The conversation ended for good: the service rejected it or restarts ran out."""

    error: LiveError


@attrs.frozen
class ConversationClosed(Event):
    """The conversation was stopped and its connection closed. Always the last event."""
