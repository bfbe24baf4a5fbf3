"""Commands on a conversation's durable input stream: what a client writes, what the owner reads.

Each entry is one JSON object (field ``c``) with a kind ``k``:

* ``{"k": "text", "text": ..., "tc": bool}``: a user's text; the owner turns it into the wire
  message its model takes (``clientContent``, or realtime text on models that refuse late
  ``clientContent``).
* ``{"k": "wire", "m": {...}}``: a wire message validated and encoded by the client (content,
  audio, video, realtime text, activity markers, ``audioStreamEnd``).
* ``{"k": "tool", "r": [...]}``: function responses (``types.FunctionResponse`` as JSON).
* ``{"k": "stop", "grace": seconds}``: stop once everything before it is answered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from google.genai import types

from ._json import dumps, loads

if TYPE_CHECKING:
    from .._supervisor import Supervisor

__all__ = ["Command", "decode_command", "stop", "text", "tool", "wire", "wire_message"]


@attrs.frozen
class Command:
    """One decoded entry of the input stream."""

    kind: str
    message: dict[str, Any] = attrs.field(factory=dict, repr=False)
    text: str = attrs.field(default="", repr=False)
    turn_complete: bool = True
    responses: tuple[types.FunctionResponse, ...] = attrs.field(default=(), repr=False)
    grace: float = 5.0


# Commands are JSON text (str): they go into Lua scripts' arguments and the owner's notice.
# orjson writes them (``_json``): a microphone chunk's command takes 4 us with the standard
# library and 1 us with orjson, on every 20 ms chunk a client sends.


def text(value: str, turn_complete: bool) -> str:
    return dumps({"k": "text", "text": value, "tc": turn_complete}).decode()


def wire(message: dict[str, Any]) -> str:
    return dumps({"k": "wire", "m": message}).decode()


def tool(responses: list[types.FunctionResponse]) -> str:
    body = [r.model_dump(mode="json", exclude_none=True) for r in responses]
    return dumps({"k": "tool", "r": body}).decode()


def stop(grace: float) -> str:
    return dumps({"k": "stop", "grace": grace}).decode()


def decode_command(raw: str) -> Command:
    """The command of one stream entry (``ValueError`` for one no client of this version
    writes)."""
    data = loads(raw)
    kind = data.get("k")
    if kind == "text":
        return Command("text", text=str(data["text"]), turn_complete=bool(data["tc"]))
    if kind == "wire":
        return Command("wire", message=dict(data["m"]))
    if kind == "tool":
        responses = tuple(types.FunctionResponse.model_validate(r) for r in data["r"])
        return Command("tool", responses=responses)
    if kind == "stop":
        return Command("stop", grace=float(data["grace"]))
    raise ValueError(f"unknown command kind {kind!r}")


def wire_message(sup: Supervisor, cmd: Command) -> dict[str, Any] | None:
    """The wire message an input command becomes on ``sup``'s model (None: not input)."""
    if cmd.kind == "text":
        message: dict[str, Any] = sup.text_message(cmd.text, turn_complete=cmd.turn_complete)
        return message
    if cmd.kind == "wire":
        return dict(cmd.message)
    return None
