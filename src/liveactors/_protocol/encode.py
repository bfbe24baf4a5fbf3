"""Client messages -> wire JSON (pure lowerCamelCase, standard base64).

Each function validates its input and returns the message as a dict; nothing here knows about
connections. Bad input raises :class:`~liveactors.InvalidCommand` naming what was wrong, before
anything could be sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import pydantic
from google.genai import types

from .._errors import InvalidCommand
from ._wire import b64encode, to_wire

__all__ = [
    "SCHEDULING",
    "activity_end",
    "activity_start",
    "audio_stream_end",
    "client_content",
    "contents",
    "function_responses",
    "realtime_audio",
    "realtime_text",
    "realtime_video",
    "tool_response",
]

#: Valid ``FunctionResponse.scheduling`` values (only meaningful for NON_BLOCKING functions).
SCHEDULING: Final = frozenset({"SILENT", "WHEN_IDLE", "INTERRUPT"})

_MIN_RATE, _MAX_RATE = 8_000, 48_000
_IMAGE_MIME = re.compile(r"^image/[A-Za-z0-9.+-]+$")


def contents(turns: Any) -> list[types.Content]:
    """Normalise what users pass as turns: a str, a Part, a Content, a dict of either, or a list
    of those.

    As in google-genai (``t_contents``), consecutive strs and Parts are grouped into one
    Content: a user turn, or a model turn when they are function calls.
    """
    if isinstance(turns, str | types.Content | Mapping | types.Part):
        items: Sequence[Any] = [turns]
    elif isinstance(turns, Sequence) and not isinstance(turns, bytes | bytearray):
        items = turns
    else:
        raise InvalidCommand(
            "turns must be a str, a Part, a Content, a dict or a list of them, "
            f"not {type(turns).__name__}"
        )
    out: list[types.Content] = []
    parts: list[types.Part] = []

    def flush() -> None:
        if parts:
            role = "model" if parts[0].function_call is not None else "user"
            out.append(types.Content(role=role, parts=list(parts)))
            parts.clear()

    for index, item in enumerate(items):
        content, part = _content_or_part(item, index)
        if part is not None:
            if parts and (part.function_call is None) != (parts[0].function_call is None):
                flush()
            parts.append(part)
        elif content is not None:
            flush()
            out.append(content)
    flush()
    for index, content in enumerate(out):
        if content.role not in (None, "user", "model"):
            raise InvalidCommand(
                f"turns[{index}].role must be 'user' or 'model', not {content.role!r}"
            )
    return out


def _content_or_part(item: Any, index: int) -> tuple[types.Content | None, types.Part | None]:
    if isinstance(item, types.Content):
        return item, None
    if isinstance(item, types.Part):
        return None, item
    if isinstance(item, str):
        return None, types.Part(text=item)
    if isinstance(item, Mapping):
        data = dict(item)
        if data:  # like google-genai: a dict that is a valid Part is a Part
            try:
                return None, types.Part.model_validate(data)
            except pydantic.ValidationError:
                pass
        try:
            return types.Content.model_validate(data), None
        except pydantic.ValidationError as exc:
            raise InvalidCommand(
                f"turns[{index}] is not a valid Content: {exc.errors()[0]['msg']}"
            ) from None
    raise InvalidCommand(
        f"turns[{index}] must be a str, a Part, a Content or a dict, not {type(item).__name__}"
    )


def client_content(turns: Any, *, turn_complete: bool = True) -> dict[str, Any]:
    """``clientContent``: ordered turns appended to history; ``turn_complete`` asks for an answer.

    ``turns=None`` (or an empty list) with ``turn_complete=True`` is the documented way to say
    "answer now" without adding anything.
    """
    if not isinstance(turn_complete, bool):
        raise InvalidCommand(f"turn_complete must be a bool, not {type(turn_complete).__name__}")
    body: dict[str, Any] = {}
    if turns is not None:
        items = contents(turns)
        if items:
            body["turns"] = [to_wire(c.model_dump(exclude_none=True)) for c in items]
    if turn_complete:
        body["turnComplete"] = True
    return {"clientContent": body}


def realtime_audio(pcm: bytes, *, rate: int = 16000) -> dict[str, Any]:
    """One chunk of 16-bit little-endian mono PCM at ``rate`` Hz."""
    if not isinstance(pcm, bytes | bytearray | memoryview):
        raise InvalidCommand(f"audio must be bytes of 16-bit PCM, not {type(pcm).__name__}")
    if isinstance(rate, bool) or not isinstance(rate, int):
        raise InvalidCommand(f"rate must be an int (Hz), not {type(rate).__name__}")
    if not _MIN_RATE <= rate <= _MAX_RATE:
        raise InvalidCommand(f"rate must be between {_MIN_RATE} and {_MAX_RATE} Hz, not {rate}")
    data = bytes(pcm)
    if not data:
        raise InvalidCommand("audio chunk is empty")
    if len(data) % 2:
        raise InvalidCommand(
            f"audio must be whole 16-bit samples; got an odd length of {len(data)} bytes"
        )
    return {
        "realtimeInput": {"audio": {"mimeType": f"audio/pcm;rate={rate}", "data": b64encode(data)}}
    }


def realtime_video(frame: bytes, *, mime_type: str = "image/jpeg") -> dict[str, Any]:
    """One video frame as an image (JPEG, PNG, WebP...)."""
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise InvalidCommand(f"video frame must be bytes, not {type(frame).__name__}")
    if not isinstance(mime_type, str) or not _IMAGE_MIME.match(mime_type):
        raise InvalidCommand(f"video mime_type must look like 'image/jpeg', not {mime_type!r}")
    data = bytes(frame)
    if not data:
        raise InvalidCommand("video frame is empty")
    return {"realtimeInput": {"video": {"mimeType": mime_type, "data": b64encode(data)}}}


def realtime_text(text: str) -> dict[str, Any]:
    """Realtime text, handled like speech (VAD-driven, may interrupt)."""
    if not isinstance(text, str):
        raise InvalidCommand(f"text must be a str, not {type(text).__name__}")
    if not text:
        raise InvalidCommand("text is empty")
    return {"realtimeInput": {"text": text}}


def activity_start() -> dict[str, Any]:
    """Manual VAD: the user started speaking."""
    return {"realtimeInput": {"activityStart": {}}}


def activity_end() -> dict[str, Any]:
    """Manual VAD: the user stopped speaking; the model answers."""
    return {"realtimeInput": {"activityEnd": {}}}


def audio_stream_end() -> dict[str, Any]:
    """Automatic VAD: the microphone closed; flush cached audio."""
    return {"realtimeInput": {"audioStreamEnd": True}}


def function_responses(responses: Any) -> list[types.FunctionResponse]:
    """Normalise tool responses: one or a list of ``FunctionResponse`` or dicts of its fields."""
    if isinstance(responses, types.FunctionResponse | Mapping):
        items: Iterable[Any] = [responses]
    elif isinstance(responses, Sequence) and not isinstance(responses, str | bytes):
        items = responses
    else:
        raise InvalidCommand(
            "responses must be a FunctionResponse, a dict or a list of them, "
            f"not {type(responses).__name__}"
        )
    out: list[types.FunctionResponse] = []
    for index, item in enumerate(items):
        if isinstance(item, Mapping):
            try:
                item = types.FunctionResponse.model_validate(dict(item))
            except pydantic.ValidationError as exc:
                raise InvalidCommand(
                    f"responses[{index}] is not a valid FunctionResponse: {exc.errors()[0]['msg']}"
                ) from None
        if not isinstance(item, types.FunctionResponse):
            raise InvalidCommand(
                f"responses[{index}] must be a FunctionResponse or a dict, "
                f"not {type(item).__name__}"
            )
        if not item.id:
            raise InvalidCommand(
                f"responses[{index}] has no id; copy it from the ToolCall's function call"
            )
        scheduling = item.scheduling
        if scheduling is not None:
            name = getattr(scheduling, "value", scheduling)
            if name not in SCHEDULING:
                raise InvalidCommand(
                    f"responses[{index}].scheduling must be one of {sorted(SCHEDULING)}, "
                    f"not {name!r}"
                )
        out.append(item)
    if not out:
        raise InvalidCommand("no tool responses given")
    return out


def tool_response(responses: Sequence[types.FunctionResponse]) -> dict[str, Any]:
    """``toolResponse`` for already-validated responses (see :func:`function_responses`)."""
    wire = [
        to_wire(r.model_dump(exclude_none=True), parent="function_responses") for r in responses
    ]
    return {"toolResponse": {"functionResponses": wire}}
