"""The scriptable model: what a responder sees (:class:`TurnContext`) and what it may answer.

A responder is any callable, sync or async, taking a :class:`TurnContext` and returning a reply:
``None`` (an empty turn), a string (said in chunks), one step, or a sequence of strings and
steps. The server plays the steps in order and then ends the turn with ``generationComplete``
and ``turnComplete``. Steps:

* :class:`Say` — text, split into ``chunks`` model chunks (TEXT), or audio chunks with
  output transcription (AUDIO).
* :class:`CallTool` — a function call; consecutive calls go out in one ``toolCall``. If any is a
  blocking function, the turn pauses there: when every blocking call has its ``toolResponse``
  the responder is called again for the same turn, with ``tool_results`` filled in (steps after
  the call are dropped). NON_BLOCKING calls let the turn go on.
* :class:`Pause` — wait (inside the turn, so barge-in can interrupt it).
* :class:`Hold` — wait inside the turn until a test's gate opens.
* :class:`SendPart`, :class:`SendMessage` — any model part or any raw server message.
* :class:`WaitForInput` — end the turn as waiting for the user to go on (``waitingForInput``,
  ``turnCompleteReason``).
* :class:`CloseConnection`, :class:`DropConnection` — scripted errors.

The default, :func:`echo_responder`, answers ``f"echo #{n}: {user_text}"``, where ``n`` is the
session's model-turn counter, so a test sees whether resumption kept the session's state.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeAlias

import attrs
import trio

__all__ = [
    "CallTool",
    "CloseConnection",
    "DropConnection",
    "Hold",
    "Pause",
    "Reply",
    "Responder",
    "Say",
    "SendMessage",
    "SendPart",
    "Step",
    "TurnContext",
    "WaitForInput",
    "coerce_reply",
    "echo_responder",
    "split_text",
]


@attrs.frozen
class TurnContext:
    """Everything a responder may base one model turn on."""

    #: The session (stable across resumption).
    session_id: str
    #: The connection the turn runs on.
    connection: int
    #: The session's model-turn counter: 1 for the first turn, carried over by resumption.
    turn: int
    #: The user input this turn answers: every user text since the last answered turn, joined
    #: by spaces (audio input appears as its transcription, e.g. ``"<audio 1.20s>"``).
    user_text: str
    #: Why the turn started: "clientContent", "realtimeInput.text", "audio", "toolResponse".
    trigger: str
    #: "TEXT", "AUDIO" or "VIDEO" (a live avatar).
    modality: str
    #: The conversation so far as ``Content`` dicts (camelCase), oldest first.
    history: tuple[Mapping[str, Any], ...]
    #: Declared functions by name (their ``FunctionDeclaration`` dicts).
    tools: Mapping[str, Mapping[str, Any]]
    #: The setup message's body (camelCase).
    config: Mapping[str, Any]
    #: The ``functionResponses`` this turn continues from (empty for a fresh turn).
    tool_results: tuple[Mapping[str, Any], ...] = ()


@attrs.frozen
class Say:
    """Text the model says: model text chunks (TEXT) or audio plus transcription (AUDIO)."""

    text: str


@attrs.frozen
class CallTool:
    """Call a declared function; ``id`` defaults to a fresh opaque id."""

    name: str
    args: Mapping[str, Any] = attrs.field(factory=dict)
    id: str | None = None


@attrs.frozen
class Pause:
    """Wait ``seconds`` (trio clock) inside the turn."""

    seconds: float


@attrs.frozen
class Hold:
    """Wait inside the turn until ``until()`` returns: a test's gate, to freeze turns at a
    chosen point (say, just before their end, to kill a client mid-turn)."""

    until: Callable[[], Awaitable[None]]


@attrs.frozen
class SendPart:
    """Send one ``modelTurn`` chunk with this part (``executableCode``, ``thought``, ...)."""

    part: Mapping[str, Any]


@attrs.frozen
class SendMessage:
    """Send this server message verbatim (e.g. ``{"voiceActivity": {...}}``)."""

    message: Mapping[str, Any]


@attrs.frozen
class WaitForInput:
    """End the turn here, waiting for the user to go on: ``turnComplete`` carries
    ``waitingForInput: true`` and ``turnCompleteReason`` (steps after it are dropped)."""

    reason: str = "NEED_MORE_INPUT"


@attrs.frozen
class CloseConnection:
    """Close the connection with this code and reason, mid-turn."""

    code: int = 1011
    reason: str = "Internal error encountered."


@attrs.frozen
class DropConnection:
    """Drop the connection without a close frame, mid-turn."""


Step: TypeAlias = (
    Say
    | CallTool
    | Pause
    | Hold
    | SendPart
    | SendMessage
    | WaitForInput
    | CloseConnection
    | DropConnection
)
Reply: TypeAlias = str | Step | Sequence[str | Step] | None
Responder: TypeAlias = Callable[[TurnContext], Reply | Awaitable[Reply]]

_STEP_TYPES = (
    Say,
    CallTool,
    Pause,
    Hold,
    SendPart,
    SendMessage,
    WaitForInput,
    CloseConnection,
    DropConnection,
)


def coerce_reply(reply: object) -> list[Step]:
    """A responder's answer as a list of steps; anything else is a ``TypeError``."""
    if reply is None:
        return []
    if isinstance(reply, str):
        return [Say(reply)]
    if isinstance(reply, _STEP_TYPES):
        return [reply]
    if isinstance(reply, Sequence):
        steps: list[Step] = []
        for item in reply:
            if isinstance(item, str):
                steps.append(Say(item))
            elif isinstance(item, _STEP_TYPES):
                steps.append(item)
            else:
                raise TypeError(f"a responder step must be a str or a step, not {item!r}")
        return steps
    raise TypeError(f"a responder must return None, a str, a step or a sequence, not {reply!r}")


_CALL = re.compile(r"^\s*call\s+([A-Za-z_][\w.-]*)\s*(\{.*\})?\s*$", re.DOTALL)


def compact_json(value: Any) -> str:
    """Sorted, compact JSON: how the echo responder prints tool results."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def echo_responder(ctx: TurnContext) -> Reply:
    """The default model.

    * After tool results: ``"echo #{n}: {name} -> {response as compact JSON}"`` (``; ``-joined).
    * ``"call NAME {json args}"`` naming a declared function: calls it.
    * Anything else: ``"echo #{n}: {user_text}"``.
    """
    if ctx.tool_results:
        results = "; ".join(
            f"{result.get('name', '')} -> {compact_json(result.get('response', {}))}"
            for result in ctx.tool_results
        )
        return f"echo #{ctx.turn}: {results}"
    match = _CALL.match(ctx.user_text)
    if match and match.group(1) in ctx.tools:
        try:
            args = json.loads(match.group(2)) if match.group(2) else {}
        except ValueError:
            args = None
        if isinstance(args, dict):
            return CallTool(match.group(1), args)
    return f"echo #{ctx.turn}: {ctx.user_text}"


def split_text(text: str, pieces: int) -> list[str]:
    """``text`` cut into at most ``pieces`` non-empty, nearly equal parts (joined: ``text``)."""
    if not text:
        return []
    size = len(text)
    count = min(pieces, size)
    return [text[i * size // count : (i + 1) * size // count] for i in range(count)]


class EndGate:
    """A responder that holds every answer just before its end while shut: a client (or a
    cluster worker) killed then dies mid-turn, with the answer's text sent but no
    ``turnComplete`` yet, which is the moment crash tests and the cluster demo aim at."""

    def __init__(self) -> None:
        self._open = trio.Event()
        self._open.set()

    def shut(self) -> None:
        """Hold answers from now on, each just before its end."""
        if self._open.is_set():
            self._open = trio.Event()

    def open(self) -> None:
        """Let the held answers end, and the next ones go through."""
        self._open.set()

    async def until_open(self) -> None:
        """Wait while the gate is shut (shut again meanwhile: wait again)."""
        while not self._open.is_set():
            await self._open.wait()

    def responder(self, ctx: TurnContext) -> list[Say | Hold]:
        """The echo answer, then a hold until the gate is open (questions only: no tools)."""
        reply = echo_responder(ctx)
        assert isinstance(reply, str)
        return [Say(reply), Hold(self.until_open)]
