"""The user-facing side of a conversation: the ``Conversation`` hooks and the ``ConversationRef``.

A :class:`Conversation` is the actor's behaviour: subclass it and override hooks to react to
events, answer tool calls, or act when a turn completes. A :class:`ConversationRef` is how the
rest of a program talks to a running conversation: every ``send_*`` validates its arguments at
the call site (raising :class:`~liveactors.InvalidCommand` and changing nothing), then queues the
command in the conversation's mailbox, in order, waiting while the mailbox is full. Once a
``send_*`` returns, the input is acknowledged: a dropped connection will not lose it.

Validation covers types, values JSON cannot hold (a ``Decimal``, a set, NaN, an arbitrary
object, text with a lone surrogate) and sizes: one message at most ``MAX_MESSAGE_BYTES``
(8 MiB) encoded, one audio chunk or video frame at most ``MAX_MEDIA_BYTES`` (4 MiB), both in
``liveactors._protocol.encode``, which says why. So nothing the writer cannot send ever enters
the mailbox, and a rejected command leaves the conversation exactly as it was.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import trio
from google.genai import types

from . import events as ev
from ._bus import Overflow, Subscription
from ._errors import InvalidCommand
from ._protocol import encode
from ._reply import Reply, ReplyBuilder

if TYPE_CHECKING:
    from ._supervisor import Supervisor

__all__ = [
    "Conversation",
    "ConversationRef",
    "ConversationState",
    "ConversationStatistics",
]


class ConversationState(enum.Enum):
    """Where a conversation is in its life."""

    CONNECTING = "connecting"
    READY = "ready"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    CLOSED = "closed"


@attrs.frozen
class ConversationStatistics:
    """A snapshot of one conversation's counters."""

    name: str
    state: ConversationState
    #: Connections that completed setup.
    connections: int
    #: Reconnects after a failure (GoAway handoffs are counted separately).
    reconnects: int
    #: Planned switches to a new connection after a goAway.
    handoffs: int
    messages_in: int
    messages_out: int
    #: Sum of ``totalTokenCount`` over the usage reports received.
    tokens: int
    turns: int
    #: Seconds since the latest resumable handle arrived (None: no handle yet).
    last_handle_age: float | None
    #: Commands waiting in the mailbox.
    mailbox: int
    subscribers: int
    #: Events dropped by this conversation's ``drop_oldest`` / ``error`` subscribers.
    events_dropped: int
    #: Retries after the service's concurrency limit refused a connect (not in ``reconnects``).
    busy_retries: int = 0
    #: Input messages handed back undelivered when the conversation ended (``InputUndelivered``).
    undelivered: int = 0
    #: Realtime audio / video chunks trimmed from the replay buffer, older than the replay
    #: window (see :class:`~liveactors.events.ReplayTrimmed`).
    replay_trimmed: int = 0


class Conversation:
    """Base class of conversation actors; override the hooks you need.

    Hooks run in the conversation's own tasks: ``on_event`` and ``on_turn_complete`` in the
    reader, in event order (a slow hook slows the conversation down — spawn long work), and
    ``on_tool_call`` in a task per call, which a ``toolCallCancellation`` cancels.

    ``functions`` maps function names to callables (async or sync; sync ones run in a worker
    thread) that the default ``on_tool_call`` calls with the call's arguments. ``scheduling``
    maps NON_BLOCKING function names to the response scheduling (``"INTERRUPT"``,
    ``"WHEN_IDLE"`` — the default — or ``"SILENT"``).
    """

    functions: ClassVar[Mapping[str, Callable[..., Any]]] = {}
    scheduling: ClassVar[Mapping[str, str]] = {}

    #: The running conversation, set before ``on_start``.
    ref: ConversationRef

    async def on_start(self) -> None:
        """The first connection is up."""

    async def on_event(self, event: ev.Event) -> None:
        """Every event, in order, as it is published."""

    async def on_turn_complete(self, event: ev.TurnComplete) -> None:
        """A model turn completed."""

    async def on_tool_call(self, call: types.FunctionCall) -> Any:
        """Answer one function call: return its result (a value, a dict, or a whole
        ``types.FunctionResponse``). The result must be plain JSON (dicts with str keys, lists,
        str, int, finite float, bool, None); an exception, or a result that is not JSON, is
        answered through :meth:`on_tool_error` and the conversation carries on.

        The default calls ``functions[call.name](**call.args)``.
        """
        function = self.functions.get(call.name or "")
        if function is None:
            raise LookupError(f"no function named {call.name!r}")
        args = dict(call.args or {})
        if inspect.iscoroutinefunction(function):
            return await function(**args)
        return await trio.to_thread.run_sync(lambda: function(**args), abandon_on_cancel=True)

    def on_tool_error(self, call: types.FunctionCall, error: Exception) -> dict[str, Any]:
        """The response body the model gets when answering ``call`` failed.

        ``error`` is what :meth:`on_tool_call` raised, or a ``TypeError`` (the result is not
        JSON: ``"the result of get_weather is not JSON: response.output.price is a Decimal"``)
        or ``ValueError`` (the result is too large to send) raised for its result. Either way a
        WARNING with the traceback is logged first. The default tells the model the
        exception's type and message, ``{"error": "ValueError: no weather for Paris"}``;
        override it to keep details from the model (a message may hold private data) or to
        tell it what to do instead.

        Runs in the call's task and must not block. It must return a dict of plain JSON; if it
        raises or returns anything else, that is logged and the default body is sent.
        """
        return {"error": f"{type(error).__name__}: {error}"}

    async def on_stop(self) -> None:
        """The conversation is closing (not called when it failed)."""

    @classmethod
    def answers_tool_calls(cls) -> bool:
        """Whether this class answers tool calls itself (else the user sends responses)."""
        return cls.on_tool_call is not Conversation.on_tool_call or bool(cls.functions)


class ConversationRef:
    """A handle on a running conversation: send input, ask, subscribe, stop."""

    __slots__ = ("_sup",)

    def __init__(self, supervisor: Supervisor) -> None:
        self._sup = supervisor

    def __repr__(self) -> str:
        return f"<ConversationRef {self.name!r} {self.state.value}>"

    @property
    def name(self) -> str:
        """The conversation's name (unique in its orchestrator)."""
        return self._sup.name

    @property
    def state(self) -> ConversationState:
        """CONNECTING, READY, RECONNECTING, FAILED or CLOSED."""
        return self._sup.state

    # -- input ------------------------------------------------------------------------------

    async def send_text(self, text: str, *, turn_complete: bool = True) -> None:
        """Send a user turn of text (``clientContent``); ``turn_complete=False`` only adds it to
        the history. On a model that takes ``clientContent`` only as initial history
        (``gemini-3.1-flash-live-preview``) a whole turn goes as realtime text instead."""
        _check_text(text)
        if not isinstance(turn_complete, bool):
            raise InvalidCommand(
                f"turn_complete must be a bool, not {type(turn_complete).__name__}"
            )
        await self._sup.submit(self._sup.text_message(text, turn_complete=turn_complete))

    async def send_content(self, turns: Any, *, turn_complete: bool = True) -> None:
        """Send turns (``types.Content``, dicts, or str) as ``clientContent``.

        Validated here: the turns must be valid Content, plain JSON where they hold free-form
        data (a function call's ``args``, a function response), and at most
        ``MAX_MESSAGE_BYTES`` (8 MiB) encoded; anything else raises ``InvalidCommand`` naming
        the place (``"turns[0].parts[1].functionCall.args.x is a Decimal"``)."""
        await self._sup.submit(encode.client_content(turns, turn_complete=turn_complete))

    async def send_audio(self, pcm: bytes, *, rate: int = 16000) -> None:
        """Stream a chunk of 16-bit little-endian mono PCM recorded at ``rate`` Hz (at most
        ``MAX_MEDIA_BYTES``, 4 MiB: stream audio in small chunks, 20 to 100 ms)."""
        await self._sup.submit(encode.realtime_audio(pcm, rate=rate))

    async def send_video(self, frame: bytes, *, mime_type: str = "image/jpeg") -> None:
        """Stream one video frame (an image, at most ``MAX_MEDIA_BYTES``, 4 MiB)."""
        await self._sup.submit(encode.realtime_video(frame, mime_type=mime_type))

    async def send_realtime_text(self, text: str) -> None:
        """Stream text as realtime input (handled like speech)."""
        await self._sup.submit(encode.realtime_text(text))

    async def activity_start(self) -> None:
        """Manual VAD: the user started speaking."""
        self._sup.require_manual_vad("activity_start")
        await self._sup.submit(encode.activity_start())

    async def activity_end(self) -> None:
        """Manual VAD: the user stopped speaking."""
        self._sup.require_manual_vad("activity_end")
        await self._sup.submit(encode.activity_end())

    async def audio_stream_end(self) -> None:
        """Automatic VAD: the microphone closed (flushes cached audio)."""
        self._sup.require_automatic_vad("audio_stream_end")
        await self._sup.submit(encode.audio_stream_end())

    async def send_tool_response(self, responses: Any) -> None:
        """Answer pending tool calls: ``types.FunctionResponse``\\ s or dicts, each with the
        ``id`` of its call. Each ``response`` must be plain JSON (dicts with str keys, lists,
        str, int, finite float, bool, None) and the message at most 8 MiB encoded."""
        await self._sup.submit_tool_response(encode.function_responses(responses))

    async def ask(self, text: str) -> Reply:
        """Send ``text`` and return the whole answering turn as a :class:`Reply`.

        Survives reconnects: if the connection drops mid-answer, the answer after the reconnect
        is returned. Bound the wait the trio way: ``with trio.fail_after(10): await ask(...)``.
        """
        _check_text(text)
        builder = ReplyBuilder()
        await self._sup.submit(self._sup.text_message(text, turn_complete=True), reply=builder)
        return await builder.wait()

    # -- events -----------------------------------------------------------------------------

    @asynccontextmanager
    async def subscribe(
        self,
        *event_types: type[ev.Event],
        buffer: int = 256,
        overflow: Overflow = "block",
    ) -> AsyncIterator[Subscription]:
        """Receive this conversation's events (optionally only ``event_types``) from now on.

        The iteration ends after :class:`~liveactors.events.ConversationClosed`.
        """
        sub = self._sup.bus.subscribe(
            event_types, conversation=self.name, buffer=buffer, overflow=overflow
        )
        if self._sup.finished:
            self._sup.bus.unsubscribe(sub)
        try:
            yield sub
        finally:
            self._sup.bus.unsubscribe(sub)

    def statistics(self) -> ConversationStatistics:
        """Counters of this conversation."""
        return self._sup.statistics()

    # -- lifecycle --------------------------------------------------------------------------

    async def stop(self, *, grace: float = 5.0) -> None:
        """Send what is queued, let an answer in progress finish (up to ``grace`` seconds),
        close the connection with 1000 and wait until the conversation is closed."""
        await self._sup.stop(grace)

    async def wait_closed(self) -> None:
        """Wait until the conversation is closed or failed."""
        await self._sup.wait_finished()


def _check_text(text: object) -> None:
    """``text`` of ``send_text`` / ``ask``: a str that can be sent (see ``encode.check_text``)."""
    if not isinstance(text, str):
        raise InvalidCommand(f"text must be a str, not {type(text).__name__}")
    encode.check_text(text, "text")
