"""``ConversationRef`` for asyncio: the trio ref's commands, awaited from asyncio."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from .. import _conversation
from .. import events as ev
from .._bus import Overflow
from .._errors import ConversationStopped
from .._reply import Reply
from ._guest import Guest
from ._subscription import SubscribeContext, Subscription

__all__ = ["ConversationRef"]


def _stopped(name: str) -> ConversationStopped:
    return ConversationStopped(f"conversation {name!r} is closed: its orchestrator shut down")


class ConversationRef:
    """A handle on a running conversation, for asyncio code: the methods of
    :class:`liveactors.ConversationRef`, each run in the orchestrator's trio guest run.

    Each command validates, queues and returns exactly as the trio one does and raises the same
    :class:`~liveactors.LiveError`\\ s; cancelling the asyncio task that awaits one cancels it
    on the trio side too (see ``docs/asyncio.md``)."""

    __slots__ = ("__weakref__", "_final", "_guest", "_refusal", "trio")

    def __init__(self, guest: Guest[Any], ref: _conversation.ConversationRef) -> None:
        self._guest = guest
        #: The trio ref behind this one (for trio code run with ``Orchestrator.run_trio``).
        self.trio = ref
        self._refusal = partial(_stopped, ref.name)
        #: The statistics as the guest run ended (they need its clock).
        self._final: _conversation.ConversationStatistics | None = None

    def __repr__(self) -> str:
        return f"<aio.ConversationRef {self.name!r} {self.state.value}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConversationRef) and other.trio is self.trio

    def __hash__(self) -> int:
        return hash(self.trio)

    @property
    def name(self) -> str:
        """The conversation's name (unique in its orchestrator)."""
        return self.trio.name

    @property
    def state(self) -> _conversation.ConversationState:
        """CONNECTING, READY, RECONNECTING, FAILED or CLOSED."""
        return self.trio.state

    # -- input ------------------------------------------------------------------------------

    async def send_text(self, text: str, *, turn_complete: bool = True) -> None:
        """Send a user turn of text (see :meth:`liveactors.ConversationRef.send_text`)."""
        await self._guest.call(
            partial(self.trio.send_text, text, turn_complete=turn_complete), self._refusal
        )

    async def send_content(self, turns: Any, *, turn_complete: bool = True) -> None:
        """Send turns as ``clientContent`` (see :meth:`liveactors.ConversationRef.send_content`)."""
        await self._guest.call(
            partial(self.trio.send_content, turns, turn_complete=turn_complete), self._refusal
        )

    async def send_audio(self, pcm: bytes, *, rate: int = 16000) -> None:
        """Stream a chunk of 16-bit little-endian mono PCM recorded at ``rate`` Hz."""
        await self._guest.call(partial(self.trio.send_audio, pcm, rate=rate), self._refusal)

    async def send_video(self, frame: bytes, *, mime_type: str = "image/jpeg") -> None:
        """Stream one video frame (an image)."""
        await self._guest.call(
            partial(self.trio.send_video, frame, mime_type=mime_type), self._refusal
        )

    async def send_realtime_text(self, text: str) -> None:
        """Stream text as realtime input (handled like speech)."""
        await self._guest.call(partial(self.trio.send_realtime_text, text), self._refusal)

    async def activity_start(self) -> None:
        """Manual VAD: the user started speaking."""
        await self._guest.call(self.trio.activity_start, self._refusal)

    async def activity_end(self) -> None:
        """Manual VAD: the user stopped speaking."""
        await self._guest.call(self.trio.activity_end, self._refusal)

    async def audio_stream_end(self) -> None:
        """Automatic VAD: the microphone closed (flushes cached audio)."""
        await self._guest.call(self.trio.audio_stream_end, self._refusal)

    async def send_tool_response(self, responses: Any) -> None:
        """Answer pending tool calls (``types.FunctionResponse``\\ s or dicts with ``id``)."""
        await self._guest.call(partial(self.trio.send_tool_response, responses), self._refusal)

    async def ask(self, text: str) -> Reply:
        """Send ``text`` and return the whole answering turn as a :class:`~liveactors.Reply`.

        Survives reconnects, as in trio. Bound the wait the asyncio way
        (``async with asyncio.timeout(10):``); the cancellation reaches the trio side."""
        return await self._guest.call(partial(self.trio.ask, text), self._refusal)

    # -- events -----------------------------------------------------------------------------

    def subscribe(
        self,
        *event_types: type[ev.Event],
        buffer: int = 256,
        overflow: Overflow = "block",
    ) -> SubscribeContext:
        """``async with conv.subscribe(...) as events: async for event in events``: this
        conversation's events (optionally only ``event_types``) from now on; the iteration ends
        after :class:`~liveactors.events.ConversationClosed`. ``buffer`` and ``overflow`` work
        as in trio (see :mod:`liveactors.aio`)."""
        opener = partial(self.trio.subscribe, *event_types, buffer=buffer, overflow=overflow)
        return SubscribeContext(Subscription(self._guest, opener, buffer, self._refusal))

    def statistics(self) -> _conversation.ConversationStatistics:
        """Counters of this conversation (once its orchestrator has shut down: the last)."""
        if self._final is not None:
            return self._final
        return self.trio.statistics()

    def _snapshot(self) -> None:
        self._final = self.trio.statistics()

    # -- lifecycle --------------------------------------------------------------------------

    async def stop(self, *, grace: float = 5.0) -> None:
        """Send what is queued, let an answer in progress finish (up to ``grace`` seconds),
        close the connection with 1000 and wait until the conversation is closed (at once
        once the orchestrator has shut down)."""
        await self._until_closed(partial(self.trio.stop, grace=grace))

    async def wait_closed(self) -> None:
        """Wait until the conversation is closed or failed."""
        await self._until_closed(self.trio.wait_closed)

    async def _until_closed(self, fn: Callable[[], Awaitable[None]]) -> None:
        try:
            await self._guest.call(fn, self._refusal)
        except ConversationStopped:
            if not self._guest.closed:
                raise
            # The run is over: so is the conversation.
