"""Client messages -> wire JSON (pure lowerCamelCase, standard base64).

Each function validates its input and returns the message as a dict; nothing here knows about
connections. Bad input raises :class:`~liveactors.InvalidCommand` naming what was wrong, before
anything could be sent: a wrong type, a value JSON cannot hold (a ``Decimal``, a set, NaN, an
arbitrary object, a lone surrogate), or a message over the size limits below. So whatever these
functions return, the writer can always encode and send.

Size limits. The service documents no per-message limit; its WebSocket frames travel through a
proxy whose limit is not published, and the fake server (like this client's own receive side)
takes messages up to 16 MiB. These limits keep every client message well under that, so one
oversized input is refused at the call site instead of closing the connection (1009) and then
failing again on every replay:

* :data:`MAX_MESSAGE_BYTES` (8 MiB): the encoded JSON of one ``clientContent``, ``toolResponse``
  or realtime text message;
* :data:`MAX_MEDIA_BYTES` (4 MiB): the raw bytes of one audio chunk or video frame (base64 makes
  them a third larger on the wire). Realtime input is meant to be streamed in small chunks
  (20 to 100 ms of 16 kHz audio is 640 to 3,200 bytes).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import pydantic
from google.genai import types

from .._errors import InvalidCommand
from ._wire import b64encode, dumps, to_wire

__all__ = [
    "MAX_MEDIA_BYTES",
    "MAX_MESSAGE_BYTES",
    "SCHEDULING",
    "activity_end",
    "activity_start",
    "audio_stream_end",
    "check_message",
    "check_text",
    "client_content",
    "contents",
    "function_responses",
    "json_problem",
    "realtime_audio",
    "realtime_text",
    "realtime_video",
    "tool_response",
]

#: Valid ``FunctionResponse.scheduling`` values (only meaningful for NON_BLOCKING functions).
SCHEDULING: Final = frozenset({"SILENT", "WHEN_IDLE", "INTERRUPT"})

#: The largest encoded JSON of one client message this library sends (see the module docstring).
MAX_MESSAGE_BYTES: Final = 8 * 2**20
#: The largest audio chunk or video frame, in raw bytes (base64: 5⅓ MiB on the wire).
MAX_MEDIA_BYTES: Final = 4 * 2**20

_MIN_RATE, _MAX_RATE = 8_000, 48_000
#: ``audio/pcm;rate=N`` by rate (one string per rate, not one per chunk).
_PCM_MIME: dict[int, str] = {}
_IMAGE_MIME = re.compile(r"^image/[A-Za-z0-9.+-]+$")
#: Deeper JSON than this is refused (json would hit the recursion limit, and no function result
#: or content is that deep on purpose; a self-referencing dict is caught here too).
_MAX_DEPTH: Final = 100
_MIB: Final = 2**20


# -- JSON and size checks ---------------------------------------------------------------------


def json_problem(value: Any, where: str) -> str | None:
    """Why ``value`` is not plain JSON, naming the place and the type; None when it is.

    Plain JSON is what the service's free-form fields (``google.protobuf.Struct``: a function's
    result, a call's arguments) hold: dicts with str keys, lists (tuples pass as lists), str,
    int, finite float, bool and None. ``where`` names ``value`` in the message
    (``"response.output.price is a Decimal"``). The walk is iterative, so depth never overflows
    the stack, and a path is built only for the value at fault.
    """
    # ``containers[i]`` is (index of its parent container or -1, its key in that parent).
    containers: list[tuple[int, Any]] = []
    stack: list[tuple[Any, int, Any, int]] = [(value, -1, None, 0)]
    while stack:
        item, parent, key, depth = stack.pop()
        if item is None or isinstance(item, int):  # bool and IntEnum are ints too
            continue
        if isinstance(item, str):
            if not item.isascii() and not _encodable(item):
                return (
                    f"{_path(containers, parent, key, where)} is not valid Unicode (lone surrogate)"
                )
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return (
                    f"{_path(containers, parent, key, where)} is {item!r}, which JSON cannot hold"
                )
            continue
        if depth >= _MAX_DEPTH:
            return f"{_path(containers, parent, key, where)} nests deeper than {_MAX_DEPTH} levels"
        if isinstance(item, dict):
            containers.append((parent, key))
            here = len(containers) - 1
            for sub_key, sub in reversed(item.items()):
                if not isinstance(sub_key, str):
                    return (
                        f"{_path(containers, parent, key, where)} has a key of type "
                        f"{type(sub_key).__name__} ({sub_key!r:.40}); JSON keys are strings"
                    )
                if not sub_key.isascii() and not _encodable(sub_key):
                    return (
                        f"{_path(containers, parent, key, where)} has a key that is not valid "
                        "Unicode (lone surrogate)"
                    )
                stack.append((sub, here, sub_key, depth + 1))
        elif isinstance(item, list | tuple):
            containers.append((parent, key))
            here = len(containers) - 1
            for index in range(len(item) - 1, -1, -1):
                stack.append((item[index], here, index, depth + 1))
        else:
            return f"{_path(containers, parent, key, where)} is a {type(item).__name__}"
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _path(containers: list[tuple[int, Any]], parent: int, key: Any, where: str) -> str:
    """``where`` followed by the keys that lead to the value under ``key`` of ``parent``."""
    keys = [key]
    while parent != -1:
        parent, key = containers[parent]
        keys.append(key)
    out = where
    for step in reversed(keys):
        if step is None:
            continue  # the root
        if isinstance(step, int):
            out += f"[{step}]"
        elif step.isidentifier():
            out += f".{step}"
        else:
            out += f"[{step!r}]"
    return out


def check_message(message: Mapping[str, Any], what: str, data: Any) -> None:
    """Raise :class:`InvalidCommand` unless ``message`` encodes to valid JSON within
    :data:`MAX_MESSAGE_BYTES`. ``data`` is the part of it the user gave, named ``what``: the
    error points into it (``"turns[0].parts[0].functionCall.args.x is a Decimal"``)."""
    try:
        text = dumps(message)
    except InvalidCommand:
        problem = json_problem(data, what)
        if problem is None:
            raise
        raise InvalidCommand(f"{problem}, which cannot be sent as JSON") from None
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    if size > MAX_MESSAGE_BYTES:
        raise InvalidCommand(_too_large(what, size, MAX_MESSAGE_BYTES, "of one message; split it"))


def _too_large(what: str, size: int, limit: int, advice: str) -> str:
    return (
        f"{what} is too large: {size / _MIB:.1f} MiB, over the {limit // _MIB} MiB limit {advice}"
    )


def _check_media(data: bytes, what: str) -> None:
    if len(data) > MAX_MEDIA_BYTES:
        raise InvalidCommand(
            _too_large(what, len(data), MAX_MEDIA_BYTES, "of one chunk; send smaller chunks")
        )


def check_text(text: str, what: str) -> None:
    """Raise :class:`InvalidCommand` unless ``text`` (a str, named ``what``) can be sent: valid
    Unicode (no lone surrogate) and within :data:`MAX_MESSAGE_BYTES` encoded."""
    if not text.isascii() and not _encodable(text):
        raise InvalidCommand(f"{what} is not valid Unicode (it has a lone surrogate)")
    # Encoded, a character takes 1 to 6 bytes (4 in UTF-8, 6 as a JSON escape): measure
    # exactly only when the text might be over the limit.
    if len(text) * 6 > MAX_MESSAGE_BYTES:
        size = len(json.dumps(text, ensure_ascii=False).encode("utf-8"))
        if size > MAX_MESSAGE_BYTES:
            raise InvalidCommand(
                _too_large(what, size, MAX_MESSAGE_BYTES, "of one message (encoded); split it")
            )


# -- messages ---------------------------------------------------------------------------------


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
    if type(turns) is str:
        # The common case, without pydantic (a tenth of the time): what ``contents`` and
        # ``model_dump`` make of one str.
        body["turns"] = [{"parts": [{"text": turns}], "role": "user"}]
    elif turns is not None:
        items = contents(turns)
        if items:
            body["turns"] = [to_wire(c.model_dump(exclude_none=True)) for c in items]
    if turn_complete:
        body["turnComplete"] = True
    message = {"clientContent": body}
    check_message(message, "turns", body.get("turns"))
    return message


def realtime_audio(pcm: bytes, *, rate: int = 16000) -> dict[str, Any]:
    """One chunk of 16-bit little-endian mono PCM at ``rate`` Hz."""
    if not isinstance(pcm, bytes | bytearray | memoryview):
        raise InvalidCommand(f"audio must be bytes of 16-bit PCM, not {type(pcm).__name__}")
    if isinstance(rate, bool) or not isinstance(rate, int):
        raise InvalidCommand(f"rate must be an int (Hz), not {type(rate).__name__}")
    if not _MIN_RATE <= rate <= _MAX_RATE:
        raise InvalidCommand(f"rate must be between {_MIN_RATE} and {_MAX_RATE} Hz, not {rate}")
    data = pcm if type(pcm) is bytes else bytes(pcm)
    if not data:
        raise InvalidCommand("audio chunk is empty")
    if len(data) % 2:
        raise InvalidCommand(
            f"audio must be whole 16-bit samples; got an odd length of {len(data)} bytes"
        )
    _check_media(data, "audio chunk")
    mime = _PCM_MIME.get(rate)
    if mime is None:
        mime = _PCM_MIME[rate] = f"audio/pcm;rate={rate}"
    return {"realtimeInput": {"audio": {"mimeType": mime, "data": b64encode(data)}}}


def realtime_video(frame: bytes, *, mime_type: str = "image/jpeg") -> dict[str, Any]:
    """One video frame as an image (JPEG, PNG, WebP...)."""
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise InvalidCommand(f"video frame must be bytes, not {type(frame).__name__}")
    if not isinstance(mime_type, str) or not _IMAGE_MIME.match(mime_type):
        raise InvalidCommand(f"video mime_type must look like 'image/jpeg', not {mime_type!r}")
    data = bytes(frame)
    if not data:
        raise InvalidCommand("video frame is empty")
    _check_media(data, "video frame")
    return {"realtimeInput": {"video": {"mimeType": mime_type, "data": b64encode(data)}}}


def realtime_text(text: str) -> dict[str, Any]:
    """Realtime text, handled like speech (VAD-driven, may interrupt)."""
    if not isinstance(text, str):
        raise InvalidCommand(f"text must be a str, not {type(text).__name__}")
    if not text:
        raise InvalidCommand("text is empty")
    check_text(text, "text")
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
        problem = json_problem(
            item.model_dump(include={"response"}).get("response"), f"responses[{index}].response"
        )
        if problem is not None:
            raise InvalidCommand(f"{problem}; a function's response must be plain JSON")
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
    message = tool_response(out)
    check_message(message, "responses", message["toolResponse"]["functionResponses"])
    return out


def tool_response(responses: Sequence[types.FunctionResponse]) -> dict[str, Any]:
    """``toolResponse`` for already-validated responses (see :func:`function_responses`)."""
    wire = [
        to_wire(r.model_dump(exclude_none=True), parent="function_responses") for r in responses
    ]
    return {"toolResponse": {"functionResponses": wire}}
