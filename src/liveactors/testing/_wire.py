"""Server-side wire rules: closing errors, key spellings, base64, Durations and frame building.

The fake server must emit exactly what the real service emits (lowerCamelCase keys, defaults
omitted, int64 as strings, Durations as ``"1.500s"``, standard padded base64) and accept what it
accepts (both key spellings, both base64 alphabets). Server frames are built as ``bytes`` by
concatenating precomputed pieces, so the hot path (one model chunk) costs one ``json.dumps`` of
a string at most, and an audio chunk costs nothing: its whole frame is cached.

This module is independent of the client's ``liveactors._protocol`` on purpose: the fake server
is the outside check of that code, so it must not share its bugs.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "CANCELLED_REASON",
    "DEADLINE_REASON",
    "EXHAUSTED_REASON",
    "INTERNAL_REASON",
    "INVALID_ARGUMENT",
    "QUOTA_REASON",
    "SESSION_NOT_FOUND",
    "ProtocolViolation",
    "b64_standard",
    "camel",
    "dumps",
    "format_duration",
    "snake",
    "truncate_reason",
]

#: Close reasons the real service is observed to use (see ``docs/fake-server.md``).
INVALID_ARGUMENT: Final = "Request contains an invalid argument."
SESSION_NOT_FOUND: Final = "BidiGenerateContent session not found"
INTERNAL_REASON: Final = "Internal error encountered."
DEADLINE_REASON: Final = "Deadline expired before operation could complete."
#: Vertex AI's end of a connection's lifetime (a resume, not a restart).
CANCELLED_REASON: Final = "The operation was cancelled."
#: Over the project's quota.
QUOTA_REASON: Final = "You exceeded your current quota, please check your plan and billing details."
#: RESOURCE_EXHAUSTED: too many concurrent sessions.
EXHAUSTED_REASON: Final = "Resource has been exhausted (e.g. check quota)."

#: RFC 6455 limits a close frame's reason to 123 bytes of UTF-8.
MAX_REASON_BYTES: Final = 123


class ProtocolViolation(Exception):
    """A client message the service would refuse: the connection closes with ``code``/``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


def truncate_reason(reason: str) -> str:
    """``reason`` cut to at most 123 UTF-8 bytes without splitting a character."""
    raw = reason.encode("utf-8")
    if len(raw) <= MAX_REASON_BYTES:
        return reason
    return raw[:MAX_REASON_BYTES].decode("utf-8", "ignore")


_CAMEL: dict[str, str] = {}
_SNAKE: dict[str, str] = {}


def camel(name: str) -> str:
    """``turn_complete`` -> ``turnComplete``; camelCase names pass through unchanged."""
    cached = _CAMEL.get(name)
    if cached is None:
        if "_" in name:
            head, *rest = name.split("_")
            cached = head + "".join(part[:1].upper() + part[1:] for part in rest)
        else:
            cached = name
        if len(_CAMEL) < 8192:  # client-chosen names must not grow the cache without bound
            _CAMEL[name] = cached
    return cached


def snake(name: str) -> str:
    """``turnComplete`` -> ``turn_complete``: field paths in error reasons use proto names."""
    cached = _SNAKE.get(name)
    if cached is None:
        cached = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
        if len(_SNAKE) < 8192:
            _SNAKE[name] = cached
    return cached


_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")


def b64_standard(text: str) -> tuple[str, bytes]:
    """Validate base64 in either alphabet, padded or not; return (standard padded text, bytes).

    Raises :class:`ValueError` for anything that is not base64.
    """
    missing = -len(text) % 4
    if missing == 3:
        raise ValueError("truncated base64")
    urlsafe = "-" in text or "_" in text
    standard = text.translate(_URLSAFE_TO_STANDARD) if urlsafe else text
    if missing:
        standard += "=" * missing
    try:
        raw = binascii.a2b_base64(standard, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(str(exc)) from None
    # The log shows the one canonical spelling whatever the client sent.
    return standard, raw


def format_duration(seconds: float) -> str:
    """A protobuf Duration in JSON: ``"10s"``, ``"1.500s"`` (0, 3, 6 or 9 fractional digits)."""
    nanos_total = round(seconds * 1_000_000_000)
    sign = "-" if nanos_total < 0 else ""
    whole, nanos = divmod(abs(nanos_total), 1_000_000_000)
    if nanos == 0:
        return f"{sign}{whole}s"
    if nanos % 1_000_000 == 0:
        return f"{sign}{whole}.{nanos // 1_000_000:03d}s"
    if nanos % 1_000 == 0:
        return f"{sign}{whole}.{nanos // 1_000:06d}s"
    return f"{sign}{whole}.{nanos:09d}s"


_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def dumps(message: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON for one server frame."""
    return _ENCODE(message).encode("utf-8")


def json_string(text: str) -> bytes:
    """``text`` as a JSON string literal, UTF-8 encoded (the building block of chunk frames)."""
    return _ENCODE(text).encode("utf-8")
