"""One whole model turn as a value: what ``ConversationRef.ask`` returns, and how the asks
waiting for one are fed.

An ``ask`` waits on the *exchange* its question opened (see the ledger): every event published
while the model answers that exchange goes to its :class:`ReplyBuilder`, and the turn's end
completes it. A connection lost mid-answer resets the builder: the answer is regenerated.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import trio
from google.genai import types

from . import events as ev
from ._errors import LiveError

__all__ = ["Replies", "Reply", "ReplyBuilder"]


@attrs.frozen
class Reply:
    """The model's answer to one question.

    ``text`` is the model's text, or for AUDIO turns its output transcription; ``interrupted``
    is true when the user barged in before the model finished.
    """

    text: str
    audio: bytes = attrs.field(default=b"", repr=lambda data: f"<{len(data)} bytes>")
    input_transcript: str = ""
    output_transcript: str = ""
    interrupted: bool = False
    usage: types.UsageMetadata | None = None
    turn: int = 0
    tool_calls: tuple[types.FunctionCall, ...] = ()


class ReplyBuilder:
    """Collects the events of the turn that answers one ``ask``; resolves when it completes."""

    __slots__ = (
        "_audio",
        "_done",
        "_error",
        "_input",
        "_interrupted",
        "_output",
        "_reply",
        "_text",
        "_tools",
        "_usage",
    )

    def __init__(self) -> None:
        self._done = trio.Event()
        self._reply: Reply | None = None
        self._error: LiveError | None = None
        self.reset()

    def reset(self) -> None:
        """Forget a partial answer (its connection died; the answer is regenerated)."""
        self._text: list[str] = []
        self._audio: list[bytes] = []
        self._input: list[str] = []
        self._output: list[str] = []
        self._tools: list[types.FunctionCall] = []
        self._usage: types.UsageMetadata | None = None
        self._interrupted = False

    def feed(self, event: ev.Event) -> None:
        """Take in one event of the answering turn."""
        if isinstance(event, ev.TextDelta):
            self._text.append(event.text)
        elif isinstance(event, ev.AudioChunk):
            self._audio.append(event.data)
        elif isinstance(event, ev.OutputTranscript):
            self._output.append(event.text)
        elif isinstance(event, ev.InputTranscript):
            if not event.interim:
                self._input.append(event.text)
        elif isinstance(event, ev.Usage):
            self._usage = event.metadata
        elif isinstance(event, ev.Interrupted):
            self._interrupted = True
        elif isinstance(event, ev.ToolCall):
            self._tools.extend(event.calls)

    def complete(self, turn: int) -> None:
        """The turn completed: the reply is ready."""
        output = "".join(self._output)
        self._reply = Reply(
            text="".join(self._text) or output,
            audio=b"".join(self._audio),
            input_transcript="".join(self._input),
            output_transcript=output,
            interrupted=self._interrupted,
            usage=self._usage,
            turn=turn,
            tool_calls=tuple(self._tools),
        )
        self._done.set()

    def fail(self, error: LiveError) -> None:
        """The conversation ended before the turn completed."""
        if not self._done.is_set():
            self._error = error
            self._done.set()

    async def wait(self) -> Reply:
        """The reply, once the turn completed (raises if the conversation ended first)."""
        await self._done.wait()
        if self._reply is None:
            assert self._error is not None
            raise self._error
        return self._reply


class Replies:
    """The asks waiting for an answer, by the number of the exchange each one opened."""

    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        self._waiting: dict[int, ReplyBuilder] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def expect(self, exchange: int | None, builder: ReplyBuilder | None) -> None:
        """``builder`` waits for the answer to ``exchange`` (nothing to wait for when None)."""
        if builder is not None and exchange is not None:
            self._waiting[exchange] = builder

    def take(self, exchange: int | None, event: ev.Event) -> None:
        """One event published while the model answers ``exchange``; a ``TurnComplete``
        completes that exchange's reply."""
        if exchange is None or not self._waiting:
            return
        builder = self._waiting.get(exchange)
        if builder is None:
            return
        builder.feed(event)
        if type(event) is ev.TurnComplete:
            del self._waiting[exchange]
            builder.complete(event.turn)

    def reset(self, exchange: int | None) -> None:
        """The connection died while ``exchange`` was answered: its answer is regenerated."""
        if exchange is not None and exchange in self._waiting:
            self._waiting[exchange].reset()

    def fail_all(self, error: Callable[[], LiveError]) -> None:
        """The conversation ended: every waiting ask raises ``error()``."""
        for builder in self._waiting.values():
            builder.fail(error())
        self._waiting.clear()
