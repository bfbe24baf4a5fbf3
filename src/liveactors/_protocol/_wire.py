"""Small, dependency-free rules of the proto3 JSON mapping that the Live API speaks.

The service emits lowerCamelCase keys, omits defaults, writes int64 as strings, Durations as
``"1.500s"`` and bytes as standard base64. It accepts both key spellings and both base64
alphabets. These helpers are the single place where those rules live on the client side.
"""

from __future__ import annotations

import binascii
import contextlib
import datetime
import enum
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from .._errors import InvalidCommand, ProtocolError

__all__ = [
    "OPAQUE_KEYS",
    "b64decode",
    "b64encode",
    "camel",
    "dumps",
    "is_opaque",
    "parse_duration",
    "parse_int64",
    "to_wire",
]

# Values under these keys are free-form JSON (google.protobuf.Struct / Value / map fields):
# their own keys are user data (a function's argument names, a JSON schema, label keys) and
# must reach the service exactly as given.
OPAQUE_KEYS: Final = frozenset(
    {
        "args",
        "additional_properties",
        "additionalProperties",
        "parameters_json_schema",
        "parametersJsonSchema",
        "response_json_schema",
        "responseJsonSchema",
        "labels",
        "default",
        "example",
        "structured_content",
        "structuredContent",
    }
)

# ``response`` is free-form only in a FunctionResponse; in a FunctionDeclaration it is a Schema.
_RESPONSE_PARENTS: Final = frozenset(
    {"function_response", "functionResponse", "function_responses", "functionResponses"}
)

# Maps whose keys are user names but whose values are still typed messages (Schema.properties,
# Schema.defs).
_NAME_MAP_KEYS: Final = frozenset({"properties", "defs"})

_CAMEL_CACHE: dict[str, str] = {}


def camel(name: str) -> str:
    """``response_modalities`` -> ``responseModalities``; already-camel names pass through."""
    cached = _CAMEL_CACHE.get(name)
    if cached is None:
        head, *rest = name.split("_")
        cached = head + "".join(part[:1].upper() + part[1:] for part in rest)
        if len(_CAMEL_CACHE) < 4096:
            _CAMEL_CACHE[name] = cached
    return cached


def b64encode(data: bytes) -> str:
    """Standard, padded base64: what the proto3 JSON printer emits."""
    return _b64encode(data)


_URLSAFE = bytes.maketrans(b"-_", b"+/")


def b64decode(text: str | bytes) -> bytes:
    """Decode standard or URL-safe base64, padded or not (the service accepts all four)."""
    try:
        # Fast path: standard padded base64, which is what the service sends (audio chunks):
        # pybase64's SIMD decoder when installed (0.6 µs for 100 ms of 24 kHz audio, against
        # 11 µs for binascii's strict mode).
        return _b64decode_strict(text)
    except (binascii.Error, ValueError, TypeError):
        pass
    try:
        raw = text.encode("ascii") if isinstance(text, str) else bytes(text)
    except (UnicodeEncodeError, TypeError):
        raise ProtocolError("invalid base64 data (not ASCII)") from None
    raw = raw.translate(_URLSAFE)
    missing = -len(raw) % 4
    if missing:
        raw += b"=" * missing
    try:
        return binascii.a2b_base64(raw, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f"invalid base64 data ({len(raw)} characters)") from exc


def is_opaque(key: str, parent: str) -> bool:
    """Whether the value under ``key`` (inside a message under ``parent``) is free-form JSON."""
    return key in OPAQUE_KEYS or (key == "response" and parent in _RESPONSE_PARENTS)


def to_wire(value: Any, *, opaque: bool = False, parent: str = "") -> Any:
    """Turn a ``model_dump()`` of google-genai types into wire JSON.

    Keys become lowerCamelCase except inside free-form values, enums become their names,
    bytes become standard base64 and datetimes RFC 3339 text. ``opaque`` marks a free-form
    subtree whose keys are user data; ``parent`` is the key this value sits under, which
    decides what ``response`` means.
    """
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if opaque:
                # User data: a JSON null is a value like any other.
                out[key] = to_wire(item, opaque=True)
            elif item is None:
                continue
            elif is_opaque(key, parent):
                out[camel(key)] = to_wire(item, opaque=True)
            elif key in _NAME_MAP_KEYS and isinstance(item, Mapping):
                out[key] = {name: to_wire(schema, parent=key) for name, schema in item.items()}
            else:
                out[camel(key)] = to_wire(item, parent=key)
        return out
    if isinstance(value, list | tuple):
        return [to_wire(item, opaque=opaque, parent=parent) for item in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return b64encode(bytes(value))
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime.datetime):
        # google.protobuf.Timestamp (e.g. GoogleSearch.time_range_filter); as google-genai does.
        return value.isoformat()
    return value


_DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode

_orjson_dumps: Callable[[Any], bytes] | None
try:
    from orjson import dumps as _orjson_dumps
except ImportError:  # pragma: no cover - the encoder, or the media template below
    _orjson_dumps = None


def _plain(text: str) -> bool:
    """Whether ``text`` goes into JSON as it is (printable ASCII, no quote, no backslash)."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def _media_text(message: Mapping[str, Any]) -> str | None:
    """The JSON of a realtime media chunk (``{"realtimeInput": {"audio": {"mimeType": ...,
    "data": ...}}}``, 50 of them a second per microphone), exactly as the encoder would write
    it but faster: by orjson when installed (0.3 µs against the encoder's 2.8; for nested dicts
    of strings its output is the same, escapes included), else put together directly when no
    character needs escaping. None for any other message (or one orjson refuses)."""
    if len(message) != 1:
        return None
    realtime = message.get("realtimeInput")
    if type(realtime) is not dict or len(realtime) != 1:
        return None
    ((field, blob),) = realtime.items()
    if type(blob) is not dict or len(blob) != 2 or type(field) is not str:
        return None
    for key, value in blob.items():
        if type(key) is not str or type(value) is not str:
            return None
    if _orjson_dumps is not None:
        try:
            return _orjson_dumps(message).decode("utf-8")
        except TypeError:  # orjson.JSONEncodeError: a lone surrogate; the encoder says so
            return None
    if not _plain(field) or not all(_plain(k) and _plain(v) for k, v in blob.items()):
        return None
    parts = ",".join(f'"{key}":"{value}"' for key, value in blob.items())
    return f'{{"realtimeInput":{{"{field}":{{{parts}}}}}}}'


def dumps(message: Mapping[str, Any]) -> str:
    """Compact JSON text for one client frame.

    Raises :class:`InvalidCommand` for anything that cannot become a valid frame (objects JSON
    cannot hold, NaN, text with lone surrogates), so nothing half-encoded is ever sent.
    """
    media = _media_text(message)
    if media is not None:
        return media
    try:
        text = _DUMPS(message)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidCommand(f"message is not JSON-serialisable: {exc}") from None
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidCommand("message text is not valid Unicode (lone surrogate)") from None
    return text


def _binascii_b64encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _binascii_b64decode(text: str | bytes) -> bytes:
    return binascii.a2b_base64(text, strict_mode=True)


_b64encode: Callable[[bytes], str] = _binascii_b64encode
_b64decode_strict: Callable[[str | bytes], bytes] = _binascii_b64decode
try:
    import pybase64
except ImportError:  # pragma: no cover - the standard library's, slower
    pass
else:

    def _pybase64_encode(data: bytes) -> str:
        return pybase64.b64encode_as_string(data)

    def _pybase64_decode(text: str | bytes) -> bytes:
        return pybase64.b64decode(text, validate=True)

    _b64encode, _b64decode_strict = _pybase64_encode, _pybase64_decode


_DURATION = re.compile(r"^(-?\d+)(?:\.(\d{1,9}))?s$")


def parse_duration(value: object) -> float:
    """Parse a protobuf Duration (``"10s"``, ``"1.500s"``) into seconds.

    A bare number is accepted too, since some peers send one.
    """
    if isinstance(value, bool):
        raise ProtocolError(f"invalid duration {value!r}")
    seconds: float | None = None
    if isinstance(value, int | float):
        with contextlib.suppress(OverflowError):
            seconds = float(value)
    elif isinstance(value, str) and len(value) <= 64:
        match = _DURATION.match(value.strip())
        if match:
            whole, frac = match.groups()
            seconds = float(int(whole))
            if frac:
                fraction = int(frac) / 10 ** len(frac)
                seconds = seconds - fraction if whole.startswith("-") else seconds + fraction
    if seconds is None or not math.isfinite(seconds):
        raise ProtocolError(f"invalid duration {_preview(value)}")
    return seconds


def _preview(value: object) -> str:
    if isinstance(value, str):
        return repr(value[:40])
    return type(value).__name__


def parse_int64(value: object) -> int:
    """Parse an int64 given as a JSON string (proto3 style) or a number."""
    if isinstance(value, bool):
        raise ProtocolError(f"invalid int64 {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ProtocolError(f"invalid int64 {_preview(value)}")
