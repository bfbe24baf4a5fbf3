"""The values the input ledger keeps: exchanges of input and answer, and resume plans (sans-IO).

An *exchange* is the client input that asks for one model turn — the messages up to and
including a *trigger* (``clientContent`` with ``turnComplete``, realtime text,
``audioStreamEnd``, ``activityEnd``) — and what is known of the turn answering it. Each input
message is *held* with its position in send order and the time it was sent, so that realtime
media can be trimmed once it is older than the replay window. The functions here classify wire
messages for the ledger.
"""

from __future__ import annotations

from array import array
from typing import Any

import attrs

__all__ = [
    "Exchange",
    "Held",
    "MediaRun",
    "ResumePlan",
    "history_message",
    "is_end_marker",
    "is_media",
    "is_trigger",
    "user_text",
]


def is_trigger(message: dict[str, Any]) -> bool:
    """Whether a client message asks the model for an answer."""
    content = message.get("clientContent")
    if content is not None:
        return bool(content.get("turnComplete"))
    realtime = message.get("realtimeInput")
    if realtime is not None:
        return bool(
            realtime.get("text") or realtime.get("audioStreamEnd") or "activityEnd" in realtime
        )
    return False


def is_end_marker(message: dict[str, Any]) -> bool:
    """``audioStreamEnd`` / ``activityEnd``: they close streamed input and carry none."""
    realtime = message.get("realtimeInput")
    return realtime is not None and (
        bool(realtime.get("audioStreamEnd")) or "activityEnd" in realtime
    )


def is_media(message: dict[str, Any]) -> bool:
    """Whether a client message is a realtime audio or video chunk (what the replay window
    trims; text, markers, ``clientContent`` and tool responses never are)."""
    realtime = message.get("realtimeInput")
    return realtime is not None and (
        "audio" in realtime or "video" in realtime or "mediaChunks" in realtime
    )


def user_text(message: dict[str, Any]) -> str:
    """The user's words in a client message (text parts of ``clientContent``, realtime
    text)."""
    content = message.get("clientContent")
    if content is not None:
        return "".join(
            part["text"]
            for turn in content.get("turns", ())
            if turn.get("role", "user") == "user"
            for part in turn.get("parts", ())
            if isinstance(part.get("text"), str)
        )
    realtime = message.get("realtimeInput")
    if realtime is not None and isinstance(realtime.get("text"), str):
        return str(realtime["text"])
    return ""


def history_message(contents: list[dict[str, Any]]) -> dict[str, Any]:
    """History for the model, appended without asking for an answer."""
    return {"clientContent": {"turns": contents}}


@attrs.define(eq=False)
class Held:
    """One input message kept for a replay."""

    #: Position in send order (renumbered when the message is sent again).
    position: int
    message: dict[str, Any] = attrs.field(repr=False)
    #: When it was first sent (the caller's clock): what the replay window measures.
    sent_at: float = 0.0
    #: The caller's name for this input (a cluster worker: its id in the durable input stream).
    tag: str | None = None


#: Message shapes of held media: ``(field, mimeType)`` -> the same tuple (one per shape).
_SHAPES: dict[tuple[str, str], tuple[str, str]] = {}


class MediaRun:
    """An exchange's held realtime media (audio chunks, video frames), oldest first, kept as
    columns: positions, send times, and for each chunk its base64 data and a shared
    ``(field, mimeType)`` shape (or the whole message, for a shape other than
    ``{"realtimeInput": {field: {"mimeType", "data"}}}``). No object per chunk: at 50
    microphone chunks a second, a held object per chunk for the 15 s replay window fed the
    garbage collector (each survived into the oldest generation and brought full collections
    on); the wire message is made again only for a replay."""

    __slots__ = ("data", "first", "positions", "retired", "shapes", "tags", "times")

    def __init__(self) -> None:
        self.positions = array("q")
        self.times = array("d")
        self.data: list[Any] = []
        self.shapes: list[tuple[str, str] | None] = []
        #: Tags by chunk, made only once a tagged chunk arrives.
        self.tags: list[str | None] | None = None
        #: Chunks before this index are dropped (trimmed, consumed): compacted now and then.
        self.first = 0
        #: Its exchange is covered: the chunks are never sent again and only age out of the
        #: window (as the held input of a covered exchange always did), uncounted.
        self.retired = False

    def __len__(self) -> int:
        return len(self.positions) - self.first

    def add(self, position: int, message: dict[str, Any], sent_at: float, tag: str | None) -> None:
        """Hold one media message, sent at ``sent_at``."""
        shape: tuple[str, str] | None = None
        payload: Any = message
        realtime = message.get("realtimeInput") if len(message) == 1 else None
        if type(realtime) is dict and len(realtime) == 1:
            ((field, blob),) = realtime.items()
            if type(blob) is dict and len(blob) == 2:
                mime, data = blob.get("mimeType"), blob.get("data")
                if type(mime) is str and type(data) is str:
                    key = (field, mime)
                    shape = _SHAPES.get(key)
                    if shape is None:
                        shape = key
                        if len(_SHAPES) < 256:
                            _SHAPES[key] = key
                    payload = data
        if tag is not None and self.tags is None:
            self.tags = [None] * len(self.positions)
        self.positions.append(position)
        self.times.append(sent_at)
        self.data.append(payload)
        self.shapes.append(shape)
        if self.tags is not None:
            self.tags.append(tag)

    def message(self, index: int) -> dict[str, Any]:
        """The wire message of chunk ``index`` (an index into the columns)."""
        shape = self.shapes[index]
        if shape is None:
            message: dict[str, Any] = self.data[index]
            return message
        return {"realtimeInput": {shape[0]: {"mimeType": shape[1], "data": self.data[index]}}}

    def tag(self, index: int) -> str | None:
        return None if self.tags is None else self.tags[index]

    def indices(self) -> range:
        """The indices of the chunks still held, oldest first."""
        return range(self.first, len(self.positions))

    def drop_front(self, count: int = 1) -> None:
        """Forget the ``count`` oldest chunks (their data at once; their slots now and then)."""
        data = self.data
        for index in range(self.first, min(self.first + count, len(data))):
            data[index] = None
        self.first += count
        first = self.first
        if first >= len(self.positions):
            self.clear()
        elif first >= 64 and first * 2 >= len(self.positions):
            del self.positions[:first]
            del self.times[:first]
            del self.data[:first]
            del self.shapes[:first]
            if self.tags is not None:
                del self.tags[:first]
            self.first = 0

    def drop_upto(self, position: int) -> None:
        """Forget every chunk at or before ``position``."""
        positions, index = self.positions, self.first
        while index < len(positions) and positions[index] <= position:
            index += 1
        if index > self.first:
            self.drop_front(index - self.first)

    def clear(self) -> None:
        """Forget every chunk."""
        del self.positions[:]
        del self.times[:]
        self.data.clear()
        self.shapes.clear()
        self.tags = None
        self.first = 0


@attrs.define
class Exchange:
    """Client input that asks for one model turn, and what is known about its answer."""

    number: int
    #: The input still held for a replay, by position, in send order.
    held: dict[int, Held] = attrs.field(factory=dict, repr=False)
    triggered: bool = False
    #: Some model output for this exchange arrived (so the service consumed its input).
    output_seen: bool = False
    answered: bool = False
    #: Position of the trigger, or of the history message that restored this exchange.
    position: int = 0
    user_text: list[str] = attrs.field(factory=list, repr=False)
    input_transcript: list[str] = attrs.field(factory=list, repr=False)
    model_text: list[str] = attrs.field(factory=list, repr=False)
    #: Media chunks trimmed from this exchange that no replay has reported yet, and the
    #: stretch of the stream (seconds, by send time) they covered.
    trimmed: int = 0
    trimmed_seconds: float = 0.0
    #: Tag of the latest message that joined this exchange (see :attr:`Held.tag`).
    last_tag: str | None = None
    #: The held realtime media (kept apart from :attr:`held`, compactly), if any.
    media: MediaRun | None = attrs.field(default=None, repr=False)

    @property
    def has_input(self) -> bool:
        """Some input is still held for a replay."""
        return bool(self.held) or bool(self.media)

    def entries(self) -> list[tuple[int, Held | int]]:
        """(position, held entry or media index) of the held input, in send order."""
        out: list[tuple[int, Held | int]] = list(self.held.items())
        media = self.media
        if media:
            positions = media.positions
            out.extend((positions[i], i) for i in media.indices())
            if self.held:
                out.sort(key=_first)
        return out

    def message_of(self, item: Held | int) -> dict[str, Any]:
        """The wire message of an item of :meth:`entries`."""
        if isinstance(item, Held):
            return item.message
        assert self.media is not None
        return self.media.message(item)

    def tag_of(self, item: Held | int) -> str | None:
        """The tag of an item of :meth:`entries`."""
        if isinstance(item, Held):
            return item.tag
        assert self.media is not None
        return self.media.tag(item)

    @property
    def inputs(self) -> list[tuple[int, dict[str, Any]]]:
        """(position, wire message) of the held input, in send order."""
        if not self.media:
            return [(p, h.message) for p, h in self.held.items()]
        return [(p, self.message_of(item)) for p, item in self.entries()]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The held input's wire messages, in send order."""
        return [m for _, m in self.inputs]

    @property
    def last_position(self) -> int | None:
        """The position of the newest held input, if any."""
        last = next(reversed(self.held), None)
        media = self.media
        if media:
            newest = media.positions[-1]
            return newest if last is None else max(last, newest)
        return last

    @property
    def first_position(self) -> int | None:
        """The position of the oldest held input, if any."""
        first = next(iter(self.held), None)
        media = self.media
        if media:
            oldest = media.positions[media.first]
            return oldest if first is None else min(first, oldest)
        return first

    def contents(self) -> list[dict[str, Any]]:
        """This exchange as history: the user's words (text, or the input transcript for audio)
        and the model's answer (text, or the output transcript)."""
        out = []
        user = "".join(self.user_text) or "".join(self.input_transcript)
        if user:
            out.append({"role": "user", "parts": [{"text": user}]})
        model = "".join(self.model_text)
        if model:
            out.append({"role": "model", "parts": [{"text": model}]})
        return out


def _first(item: tuple[int, Any]) -> int:
    return int(item[0])


@attrs.frozen
class ResumePlan:
    """What to send on a new connection, in this order, before any new input."""

    #: Resume from the latest handle; False means start a fresh session.
    resume: bool
    #: A ``clientContent`` history message (``turnComplete`` false), or None.
    history: dict[str, Any] | None = attrs.field(default=None, repr=False)
    #: Unanswered input to send again, in order.
    replay: tuple[dict[str, Any], ...] = attrs.field(default=(), repr=False)
    #: Ask the model to finish a turn it had begun (``clientContent{turnComplete:true}``).
    prompt_continue: bool = False
    #: Media chunks the replay lacks (trimmed: older than the replay window), not reported by
    #: an earlier plan, and the stretch of the stream they covered, in seconds.
    trimmed: int = 0
    trimmed_seconds: float = 0.0

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every message of the plan in send order."""
        out = [] if self.history is None else [self.history]
        out.extend(self.replay)
        if self.prompt_continue:
            out.append({"clientContent": {"turnComplete": True}})
        return out
