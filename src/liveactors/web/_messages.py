"""The socket protocol's JSON text frames, both ways (docs/web.md has the contract).

In: ``{"type": "text", "text": ...}``, ``{"type": "activity_start"}``,
``{"type": "activity_end"}``, ``{"type": "stop"}``. Out: one object per event, ``"type"`` its
class name and its fields as ``liveactors._event_codec`` writes them (resumption handles
nulled), and the bridge's own messages, whose types are lower case: ``"session"``,
``"dropped"``, ``"error"``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

import attrs

from .. import events as ev
from .._event_codec import event_to_json
from .._secrets import longest_first, redact

__all__ = [
    "ActivityEnd",
    "ActivityStart",
    "BadMessage",
    "Command",
    "Redactor",
    "SendText",
    "Stop",
    "dropped_message",
    "dumps",
    "error_message",
    "event_message",
    "parse_command",
    "session_message",
]


class BadMessage(ValueError):
    """A text frame that is not one of the protocol's commands."""


@attrs.frozen
class SendText:
    text: str


@attrs.frozen
class ActivityStart:
    pass


@attrs.frozen
class ActivityEnd:
    pass


@attrs.frozen
class Stop:
    pass


Command = SendText | ActivityStart | ActivityEnd | Stop

_BARE: Final[dict[str, Command]] = {
    "activity_start": ActivityStart(),
    "activity_end": ActivityEnd(),
    "stop": Stop(),
}


def parse_command(frame: str) -> Command:
    """The command a text frame holds; BadMessage saying what is wrong with it."""
    try:
        data = json.loads(frame)
    except ValueError:
        raise BadMessage("a text frame must be a JSON object") from None
    if not isinstance(data, dict):
        raise BadMessage("a text frame must be a JSON object")
    kind = data.get("type")
    if kind == "text":
        text = data.get("text")
        if not isinstance(text, str):
            raise BadMessage('"text" must be a string')
        return SendText(text)
    command = _BARE.get(kind) if isinstance(kind, str) else None
    if command is None:
        known = ", ".join(["text", *_BARE])
        raise BadMessage(f"unknown message type {kind!r} (known: {known})")
    return command


class Redactor:
    """Replaces credentials in outgoing text: a second line of defence behind the codec (which
    never writes handles) and the transport (which hides keys in close reasons)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = longest_first(s for s in secrets if len(s) >= 8)

    def __call__(self, text: str) -> str:
        return redact(text, self._secrets) if self._secrets else text


def dumps(message: dict[str, Any], redactor: Redactor) -> str:
    """One outgoing text frame."""
    return redactor(json.dumps(message, separators=(",", ":"), ensure_ascii=False))


def event_message(event: ev.Event) -> dict[str, Any]:
    """The text frame of an event that is not audio (secrets nulled by the codec)."""
    return event_to_json(event, secrets=False)


def session_message(
    token: str | None, conversation: str, *, resumed: bool, keep_for: float
) -> dict[str, Any]:
    """The first message on every socket: which conversation it is bridged to, whether it was
    resumed, and the token that resumes it (None when the endpoint keeps nothing)."""
    return {
        "type": "session",
        "conversation": conversation,
        "resumed": resumed,
        "token": token,
        "keep_for": keep_for,
    }


def dropped_message(audio_chunks: int, audio_bytes: int, events: int) -> dict[str, Any]:
    """How much this conversation's socket has lost so far by not keeping up (totals)."""
    return {
        "type": "dropped",
        "audio_chunks": audio_chunks,
        "audio_bytes": audio_bytes,
        "events": events,
    }


def error_message(message: str, *, command: str | None = None) -> dict[str, Any]:
    """A command was refused; the socket stays open."""
    return {"type": "error", "message": message, "command": command}
