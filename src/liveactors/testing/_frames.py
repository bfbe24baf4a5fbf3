"""Every server -> client message the fake server sends, as ready-to-send UTF-8 JSON bytes.

Each builder returns ``(kind, frame)``. ``kind`` names the message for the log and for fault
rules ("drop right before the next ``turnComplete``"): the top-level key, plus the
``serverContent`` field for content messages, e.g. ``"serverContent.turnComplete"``.

Frames follow the proto3 JSON printer: lowerCamelCase, defaults omitted, int64 as strings,
Durations as strings. Hot frames are concatenations of constant byte strings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from ._wire import dumps, format_duration, json_string

__all__ = [
    "EMPTY",
    "GENERATION_COMPLETE",
    "INTERRUPTED",
    "KINDS",
    "NOT_RESUMABLE",
    "OPTIONAL_KINDS",
    "Frame",
    "go_away",
    "input_transcription",
    "interim_input_transcription",
    "kind_matches",
    "model_part",
    "output_transcription",
    "raw",
    "resumption_update",
    "setup_complete",
    "text_chunk",
    "tool_call",
    "tool_call_cancellation",
    "turn_complete",
    "vertex_usage",
    "voice_activity",
]

Frame = tuple[str, bytes]

#: Every kind the server can send (``raw`` frames from a responder use their first key).
KINDS: Final = (
    "setupComplete",
    "serverContent.modelTurn",
    "serverContent.inputTranscription",
    "serverContent.outputTranscription",
    "serverContent.generationComplete",
    "serverContent.interrupted",
    "serverContent.turnComplete",
    "toolCall",
    "toolCallCancellation",
    "sessionResumptionUpdate",
    "goAway",
)

#: Kinds only some options or models produce: ``voiceActivity`` (``voice_activity=True``),
#: ``serverContent.interimInputTranscription`` (the transcription model), ``empty`` (a bare
#: ``{}``, ``empty_frames=n``).
OPTIONAL_KINDS: Final = ("voiceActivity", "serverContent.interimInputTranscription", "empty")


def kind_matches(kind: str, wanted: str) -> bool:
    """Whether ``kind`` is ``wanted``: given in full, as its last part (``turnComplete``), or as
    its top-level key (``serverContent`` matches every ``serverContent.*``)."""
    return kind == wanted or kind.endswith("." + wanted) or kind.startswith(wanted + ".")


GENERATION_COMPLETE: Final[Frame] = (
    "serverContent.generationComplete",
    b'{"serverContent":{"generationComplete":true}}',
)
INTERRUPTED: Final[Frame] = ("serverContent.interrupted", b'{"serverContent":{"interrupted":true}}')
NOT_RESUMABLE: Final[Frame] = ("sessionResumptionUpdate", b'{"sessionResumptionUpdate":{}}')
#: A bare ``{}`` frame: the current service sends some now and then (a client must skip them).
EMPTY: Final[Frame] = ("empty", b"{}")

_TEXT_HEAD: Final = b'{"serverContent":{"modelTurn":{"role":"model","parts":[{"text":'
_TEXT_TAIL: Final = b"}]}}}"
_OUT_HEAD: Final = b'{"serverContent":{"outputTranscription":{"text":'
_IN_HEAD: Final = b'{"serverContent":{"inputTranscription":{"text":'
_TRANSCRIPTION_TAIL: Final = b"}}}"


def setup_complete(session_id: str) -> Frame:
    """``setupComplete`` carrying the session id (SDK 3.4 exposes it as ``session.session_id``)."""
    return "setupComplete", b'{"setupComplete":{"sessionId":' + json_string(session_id) + b"}}"


def text_chunk(text: str) -> Frame:
    """One TEXT-modality model chunk."""
    return "serverContent.modelTurn", _TEXT_HEAD + json_string(text) + _TEXT_TAIL


def model_part(part: Mapping[str, Any]) -> Frame:
    """One model chunk carrying an arbitrary part (code execution, thought, ...)."""
    return "serverContent.modelTurn", dumps(
        {"serverContent": {"modelTurn": {"role": "model", "parts": [part]}}}
    )


def output_transcription(text: str) -> Frame:
    """Transcript of model speech (AUDIO modality with ``outputAudioTranscription``)."""
    return "serverContent.outputTranscription", _OUT_HEAD + json_string(text) + _TRANSCRIPTION_TAIL


def input_transcription(text: str) -> Frame:
    """Transcript of user speech (with ``inputAudioTranscription``)."""
    return "serverContent.inputTranscription", _IN_HEAD + json_string(text) + _TRANSCRIPTION_TAIL


def turn_complete(usage: Mapping[str, Any] | None, extra: Mapping[str, Any] | None = None) -> Frame:
    """The last message of a turn; ``usageMetadata`` rides on the same frame. ``extra`` adds
    ``serverContent`` fields (``interactionStatus``, ``turnCompleteReason``,
    ``waitingForInput``)."""
    if extra:
        message: dict[str, Any] = {"serverContent": {"turnComplete": True, **extra}}
        if usage:
            message["usageMetadata"] = dict(usage)
        return "serverContent.turnComplete", dumps(message)
    if not usage:
        return "serverContent.turnComplete", b'{"serverContent":{"turnComplete":true}}'
    return "serverContent.turnComplete", (
        b'{"serverContent":{"turnComplete":true},"usageMetadata":' + dumps(usage) + b"}"
    )


#: Developer API ``usageMetadata`` names and their Vertex AI spelling.
_VERTEX_USAGE: Final = {
    "responseTokenCount": "candidatesTokenCount",
    "responseTokensDetails": "candidatesTokensDetails",
}


def vertex_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """``usage`` as Vertex AI names it (``candidatesTokenCount`` for ``responseTokenCount``;
    google-genai ``_live_converters._UsageMetadata_from_vertex`` renames it back)."""
    return {_VERTEX_USAGE.get(key, key): value for key, value in usage.items()}


def interim_input_transcription(text: str) -> Frame:
    """A low-latency transcript of the user's speech so far (the transcription model)."""
    return "serverContent.interimInputTranscription", dumps(
        {"serverContent": {"interimInputTranscription": {"text": text}}}
    )


def voice_activity(kind: str, audio_offset: float) -> Frame:
    """``voiceActivity{type, audioOffset}``: the server VAD saw speech start or end."""
    body = {"voiceActivity": {"type": kind, "audioOffset": format_duration(audio_offset)}}
    return "voiceActivity", dumps(body)


def tool_call(calls: Sequence[Mapping[str, Any]]) -> Frame:
    """``toolCall`` with one or more ``{id, name, args}`` function calls."""
    return "toolCall", dumps({"toolCall": {"functionCalls": list(calls)}})


def tool_call_cancellation(ids: Sequence[str]) -> Frame:
    """``toolCallCancellation``: the client must forget (and not answer) these calls."""
    return "toolCallCancellation", dumps({"toolCallCancellation": {"ids": list(ids)}})


def go_away(time_left: float) -> Frame:
    """``goAway`` with ``timeLeft`` as a Duration string."""
    body = b'{"goAway":{"timeLeft":"' + format_duration(time_left).encode("ascii") + b'"}}'
    return "goAway", body


def resumption_update(handle: str, last_consumed_index: int | None = None) -> Frame:
    """A resumable ``sessionResumptionUpdate``; the index (Vertex transparent mode) is an int64,
    hence a string, and omitted when zero as proto3 omits defaults."""
    update: dict[str, Any] = {"newHandle": handle, "resumable": True}
    if last_consumed_index:
        update["lastConsumedClientMessageIndex"] = str(last_consumed_index)
    return "sessionResumptionUpdate", dumps({"sessionResumptionUpdate": update})


def raw(message: Mapping[str, Any]) -> Frame:
    """Any message a responder scripts; its kind is its first key (and content field)."""
    if not message:
        return "empty", b"{}"
    key = next(iter(message))
    kind = key
    value = message[key]
    if key == "serverContent" and isinstance(value, Mapping) and value:
        kind = f"serverContent.{next(iter(value))}"
    return kind, dumps(message)
