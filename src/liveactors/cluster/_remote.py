"""A conversation of the cluster, seen from any process: commands, ``ask``, state, events.

A command returns once it is on the conversation's input stream in Redis (a script appends it
only while the conversation takes input, and notifies its owner): from then on it is answered
exactly once, whatever worker dies. Arguments are checked here first, as for a local
:class:`~liveactors.ConversationRef`, so nothing the owner cannot send is ever accepted. (One
thing only the owner can check: a tool response must answer a call still pending when it gets
there; one that a reconnect or a cancellation overtook is dropped, as in one process.)

Events come from the conversation's event stream, whose entry ids are ``<seq>-1``: a
subscription starts at any ``seq`` and, after a disconnect or a failover, carries on from the
last one it saw, without gaps or repeats (the stream keeps the newest ``events_cap`` entries;
starting before those raises). A client's subscriptions (an ``ask``'s too) share one blocking
read of all their streams, the stream router of ``_router.py``: any number of them costs one
connection, and none holds up the client's commands.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

import attrs

from .. import events as ev
from .._conversation import _check_text
from .._errors import ConversationStopped, InvalidCommand
from .._protocol import encode
from .._reply import Reply, ReplyBuilder
from .._session_config import manual_vad
from . import _commands, _scripts
from ._journal import decode_event
from ._pump import NOTICE_COMMAND
from ._record_writer import RETAIN
from ._redis import StreamFeed

if TYPE_CHECKING:
    from ._client import ClusterClient

__all__ = ["RemoteConversation", "RemoteState", "RemoteSubscription"]

_ENDING: Final = (ev.ConversationClosed, ev.ConversationFailed)


@attrs.frozen
class RemoteState:
    """Where a cluster conversation is: ``state`` is ``"pending"`` (waiting for a worker),
    ``"running"``, ``"stopping"``, ``"stopped"`` or ``"failed"``."""

    name: str
    state: str
    #: The worker holding it now (None while it waits for one).
    owner: str | None
    #: The last event ``seq`` written.
    seq: int


class RemoteSubscription:
    """An async iterator over one conversation's events (see the module docstring)."""

    def __init__(
        self,
        conv: RemoteConversation,
        types: tuple[type[ev.Event], ...],
        after: int,
        feed: StreamFeed,
    ) -> None:
        self._conv = conv
        self._types = types
        #: The last ``seq`` read.
        self.last_seq = after
        self._feed = feed
        self._buffer: deque[tuple[ev.Event, str]] = deque()
        self._ended = False

    def __aiter__(self) -> RemoteSubscription:
        return self

    async def __anext__(self) -> ev.Event:
        while True:
            event, _ = await self.next_entry()
            if not self._types or isinstance(event, self._types):
                return event

    async def next_entry(self) -> tuple[ev.Event, str]:
        """The next event (every type) and the input id its TurnComplete answered ("")."""
        while not self._buffer:
            if self._ended:
                raise StopAsyncIteration
            await self._read()
        event, answered = self._buffer.popleft()
        if isinstance(event, _ENDING):
            self._ended = True
        return event, answered

    async def _read(self) -> None:
        for entry_id, fields in await self._feed.read():
            seq = int(entry_id.partition("-")[0])
            if seq != self.last_seq + 1:
                raise InvalidCommand(
                    f"events of {self._conv.name!r} from seq {self.last_seq + 1} to {seq - 1} "
                    f"are gone: the stream keeps only the newest ones"
                )
            self.last_seq = seq
            event = decode_event(fields["e"])
            answered = fields.get("a")
            self._buffer.append((event, answered.decode() if answered else ""))


class RemoteConversation:
    """A handle on a conversation of the cluster (from :class:`ClusterClient`)."""

    def __init__(self, client: ClusterClient, name: str) -> None:
        self._client = client
        self.name = name
        self._keys = client.keys.conversation(name)
        self._manual_vad: bool | None = None

    def __repr__(self) -> str:
        return f"<RemoteConversation {self.name!r}>"

    # -- input ------------------------------------------------------------------------------

    async def send_text(self, text: str, *, turn_complete: bool = True) -> None:
        """A user turn of text (see :meth:`liveactors.ConversationRef.send_text`)."""
        _check_text(text)
        if not isinstance(turn_complete, bool):
            raise InvalidCommand(
                f"turn_complete must be a bool, not {type(turn_complete).__name__}"
            )
        await self._submit(_commands.text(text, turn_complete))

    async def send_content(self, turns: Any, *, turn_complete: bool = True) -> None:
        """Turns as ``clientContent`` (checked as by the local ``send_content``)."""
        await self._submit(
            _commands.wire(encode.client_content(turns, turn_complete=turn_complete))
        )

    async def send_audio(self, pcm: bytes, *, rate: int = 16000) -> None:
        """A chunk of 16-bit mono PCM at ``rate`` Hz (at most 4 MiB)."""
        await self._submit(_commands.wire(encode.realtime_audio(pcm, rate=rate)))

    async def send_video(self, frame: bytes, *, mime_type: str = "image/jpeg") -> None:
        """One video frame (at most 4 MiB)."""
        await self._submit(_commands.wire(encode.realtime_video(frame, mime_type=mime_type)))

    async def send_realtime_text(self, text: str) -> None:
        """Text as realtime input."""
        await self._submit(_commands.wire(encode.realtime_text(text)))

    async def activity_start(self) -> None:
        """Manual VAD: the user started speaking."""
        await self._require_vad("activity_start", manual=True)
        await self._submit(_commands.wire(encode.activity_start()))

    async def activity_end(self) -> None:
        """Manual VAD: the user stopped speaking."""
        await self._require_vad("activity_end", manual=True)
        await self._submit(_commands.wire(encode.activity_end()))

    async def audio_stream_end(self) -> None:
        """Automatic VAD: the microphone closed."""
        await self._require_vad("audio_stream_end", manual=False)
        await self._submit(_commands.wire(encode.audio_stream_end()))

    async def send_tool_response(self, responses: Any) -> None:
        """Answer pending tool calls (``types.FunctionResponse``\\ s or dicts with ids)."""
        await self._submit(_commands.tool(encode.function_responses(responses)))

    async def ask(self, text: str) -> Reply:
        """Send ``text`` and return the whole turn that answers it, from whichever worker
        answers it (a failover mid-answer returns the answer given after it)."""
        _check_text(text)
        entry_id, seq = await self._submit(_commands.text(text, True))
        # Every event of the answer comes after the input was appended, so after ``seq``.
        async with self.subscribe(from_seq=seq + 1) as sub:
            turns: dict[int, ReplyBuilder] = {}
            while True:
                try:
                    event, answered = await sub.next_entry()
                except StopAsyncIteration:
                    raise ConversationStopped(
                        f"conversation {self.name!r} ended before answering"
                    ) from None
                if isinstance(event, ev.ConversationFailed):
                    raise event.error
                builder = turns.get(event.turn)
                if builder is None:  # (not setdefault: that would make a builder per event)
                    builder = turns[event.turn] = ReplyBuilder()
                if type(event) is ev.TurnComplete:
                    if answered == entry_id:
                        builder.complete(event.turn)
                        return await builder.wait()
                    turns.pop(event.turn, None)
                else:
                    builder.feed(event)

    async def stop(self, *, grace: float = 5.0) -> None:
        """Stop once everything sent before is answered (the answer in progress may take
        ``grace`` seconds); returns when it has stopped."""
        if isinstance(grace, bool) or not isinstance(grace, int | float) or not grace >= 0:
            raise InvalidCommand(f"grace must be a number of seconds >= 0, not {grace!r}")
        async with self.subscribe(ev.ConversationClosed, ev.ConversationFailed) as sub:
            with contextlib.suppress(ConversationStopped):  # stopping already
                await self._submit(_commands.stop(float(grace)), stop=True)
            if (await self.state()).state in ("stopped", "failed"):
                return
            async for _ in sub:
                return

    # -- state and events -------------------------------------------------------------------

    async def state(self) -> RemoteState:
        """Where the conversation is now (``KeyError`` if the cluster does not know it)."""
        state, owner, seq = await self._client.redis.hmget(
            f"read the state of {self.name!r}", self._keys.meta, ["state", "owner", "seq"]
        )
        if state is None:
            raise KeyError(f"no conversation named {self.name!r} in the cluster")
        return RemoteState(self.name, state, owner or None, int(seq or 0))

    @asynccontextmanager
    async def subscribe(
        self, *event_types: type[ev.Event], from_seq: int | None = None
    ) -> AsyncIterator[RemoteSubscription]:
        """This conversation's events (optionally only ``event_types``) from ``from_seq`` on
        (``from_seq=1``: from its first event), or from now. The iteration ends after
        ``ConversationClosed`` or ``ConversationFailed``."""
        if from_seq is None:
            after = (await self.state()).seq
        elif isinstance(from_seq, bool) or not isinstance(from_seq, int) or from_seq < 1:
            raise InvalidCommand(f"from_seq must be an int >= 1, not {from_seq!r}")
        else:
            after = from_seq - 1
        redis = self._client.redis
        async with redis.follow(
            f"read the events of {self.name!r}", self._keys.events, f"{after}-1"
        ) as feed:
            yield RemoteSubscription(self, event_types, after, feed)

    # -- inside -----------------------------------------------------------------------------

    async def _submit(self, command: str, *, stop: bool = False) -> tuple[str, int]:
        """Append ``command`` to the input stream: its entry id, and the last event ``seq``
        written before it."""
        client = self._client
        reply = await client.redis.script(
            f"send input to {self.name!r}",
            _scripts.SUBMIT,
            [self._keys.meta, self._keys.input, self._keys.events],
            [
                command,
                "stop" if stop else "",
                client.keys.inbox(""),
                self.name,
                RETAIN,
                NOTICE_COMMAND,
            ],
        )
        if reply[0] == 2:
            # Stopped before any worker took it: no worker will settle its lease entry.
            await client.redis.zrem(f"forget {self.name!r}", client.keys.leases, [self.name])
            return "", 0
        if reply[0] == -1:
            raise KeyError(f"no conversation named {self.name!r} in the cluster")
        if reply[0] == 0:
            raise ConversationStopped(f"conversation {self.name!r} is {reply[1]}")
        return str(reply[1]), int(reply[2] or 0)

    async def _require_vad(self, what: str, *, manual: bool) -> None:
        if self._manual_vad is None:
            config = await self._client.config_of(self.name)
            self._manual_vad = manual_vad(config)
        if self._manual_vad != manual:
            mode = "manual (automatic_activity_detection.disabled)" if manual else "automatic"
            raise InvalidCommand(f"{what} needs {mode} voice activity detection")
