"""What waits to go to one conversation's browser: bounded, so a slow client never grows memory.

The events of a conversation go into its outbox as they are published, in order, and the socket
takes them out as fast as the client reads. When the client falls behind, the outbox keeps at
most ``audio_buffer`` bytes of model audio and ``event_buffer`` other events, dropping the
*oldest* of the same kind first: stale audio goes before any word of the transcript does. What
was dropped is counted, and the socket reports the totals (a ``"dropped"`` message) before the
next thing it sends.

Audio the model said in a turn that was then interrupted is dropped without counting: the page
flushes that turn on ``Interrupted`` anyway, so it is never worth the bandwidth.
"""

from __future__ import annotations

from collections import deque

import attrs
import trio

from .. import events as ev

__all__ = ["Outbox", "OutboxStatistics"]


@attrs.frozen
class OutboxStatistics:
    """A snapshot of one outbox."""

    queued_audio_bytes: int
    queued_events: int
    #: The most ever queued at once.
    peak_audio_bytes: int
    peak_events: int
    dropped_audio_chunks: int
    dropped_audio_bytes: int
    dropped_events: int
    #: Audio of interrupted turns left out (not counted as dropped).
    stale_audio_chunks: int


class Outbox:
    """A bounded, ordered queue of events with a drop policy per kind (module docstring)."""

    def __init__(self, audio_buffer: int, event_buffer: int) -> None:
        self.audio_buffer = audio_buffer
        self.event_buffer = event_buffer
        self._items: deque[ev.Event] = deque()
        self._audio_bytes = 0
        self._events = 0
        self._peak_audio = 0
        self._peak_events = 0
        self._dropped_chunks = 0
        self._dropped_bytes = 0
        self._dropped_events = 0
        #: Events the subscription itself dropped before they reached this outbox.
        self.upstream_dropped = 0
        self._stale = 0
        self._interrupted_turn = 0
        self._waiting = trio.lowlevel.ParkingLot()
        self.closed = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def drops(self) -> tuple[int, int, int]:
        """(audio chunks, audio bytes, other events) dropped so far."""
        return (
            self._dropped_chunks,
            self._dropped_bytes,
            self._dropped_events + self.upstream_dropped,
        )

    def statistics(self) -> OutboxStatistics:
        chunks, size, events = self.drops
        return OutboxStatistics(
            self._audio_bytes,
            self._events,
            self._peak_audio,
            self._peak_events,
            chunks,
            size,
            events,
            self._stale,
        )

    def put(self, event: ev.Event) -> None:
        """Queue ``event``, dropping the oldest of its kind if there is no room; never waits."""
        if self.closed:
            return
        if isinstance(event, ev.AudioChunk):
            self._put_audio(event)
        else:
            if isinstance(event, ev.Interrupted):
                self._interrupted(event.turn)
            while self._events >= self.event_buffer:
                self._drop_oldest(audio=False)
            self._items.append(event)
            self._events += 1
            self._peak_events = max(self._peak_events, self._events)
        self._waiting.unpark()

    def _put_audio(self, chunk: ev.AudioChunk) -> None:
        size = len(chunk.data)
        if chunk.turn <= self._interrupted_turn:
            self._stale += 1
            return
        if size > self.audio_buffer:  # could never fit: drop it rather than everything else
            self._dropped_chunks += 1
            self._dropped_bytes += size
            return
        while self._audio_bytes + size > self.audio_buffer:
            self._drop_oldest(audio=True)
        self._items.append(chunk)
        self._audio_bytes += size
        self._peak_audio = max(self._peak_audio, self._audio_bytes)

    def _drop_oldest(self, *, audio: bool) -> None:
        for index, item in enumerate(self._items):
            if isinstance(item, ev.AudioChunk) is audio:
                del self._items[index]
                if audio:
                    assert isinstance(item, ev.AudioChunk)
                    self._audio_bytes -= len(item.data)
                    self._dropped_chunks += 1
                    self._dropped_bytes += len(item.data)
                else:
                    self._events -= 1
                    self._dropped_events += 1
                return
        raise AssertionError("the count says there is one")  # pragma: no cover

    def _interrupted(self, turn: int) -> None:
        """Leave out the queued audio of ``turn`` and earlier."""
        self._interrupted_turn = max(self._interrupted_turn, turn)
        if not self._audio_bytes:
            return
        kept: deque[ev.Event] = deque()
        for item in self._items:
            if isinstance(item, ev.AudioChunk) and item.turn <= turn:
                self._audio_bytes -= len(item.data)
                self._stale += 1
            else:
                kept.append(item)
        self._items = kept

    async def get(self) -> ev.Event | None:
        """The oldest queued event, waiting for one; None once closed and empty."""
        # The checkpoint comes before taking the item, so a cancellation never loses one.
        await trio.lowlevel.checkpoint()
        while not self._items:
            if self.closed:
                return None
            await self._waiting.park()
        item = self._items.popleft()
        if isinstance(item, ev.AudioChunk):
            self._audio_bytes -= len(item.data)
        else:
            self._events -= 1
        return item

    def close(self) -> None:
        """Nothing more will come; ``get`` returns what is queued, then None."""
        self.closed = True
        self._waiting.unpark_all()
