"""The stream router of the lean client: one blocking ``XREAD`` for every followed stream of a
client, so that a thousand followers cost one connection and one read, not a thousand.

Each :meth:`~._redis.Redis.follow` registers a follower of one stream (a conversation's
events) with a bounded buffer. One task, started on the first follower and living in the
client's nursery, reads every followed stream with one blocking
``XREAD COUNT n BLOCK ms STREAMS k1..kn id1..idn`` on its own connection and hands each entry
to the followers of its stream. A follower whose buffer is too full to take another read is
left out of the reads until its reader makes room, so a follower that does not read holds
back only itself. A new follower (or one that has room again) interrupts the read in progress
with ``CLIENT UNBLOCK`` from the command connection, so it is read from at once; unless that
read covers it already (the next ``ask`` on a conversation just read). When the router's read
fails, each follower's next read raises it (once per failure), and the router tries again
after a growing delay. (On a Redis Cluster a multi-key ``XREAD`` cannot span slots, and every
conversation has its own slot, so each follower does its own blocking reads there: see
``_cluster_redis.py``.)
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import trio

from ._connection import RespConnection
from ._redis import FOLLOW_BLOCK_MS, FOLLOW_BUFFER, FOLLOW_COUNT, StreamFeed
from ._resp import Arg, RespError, StreamEntry, stream_entries, stream_id

if TYPE_CHECKING:
    from ._lean_redis import LeanRedis

__all__ = ["RoutedFeed", "StreamRouter"]


class RoutedFeed(StreamFeed):
    """A follower of one stream, fed by the :class:`StreamRouter`."""

    def __init__(self, router: StreamRouter, what: str, key: str, after: str) -> None:
        self.router = router
        self.what = what
        self.key = key
        #: The last entry delivered, as text and as numbers.
        self.last = after
        self.position = stream_id(after)
        self.buffer: deque[StreamEntry] = deque()
        #: Left out of the reads for want of room.
        self.starved = False
        self._ready = trio.Event()
        #: The router's failure this follower raised already.
        self._raised: BaseException | None = None

    def __repr__(self) -> str:
        return f"<StreamFeed {self.key!r} after {self.last}>"

    @property
    def room(self) -> bool:
        """A whole read fits."""
        return len(self.buffer) <= FOLLOW_BUFFER - FOLLOW_COUNT

    def wake(self) -> None:
        self._ready.set()

    async def read(self) -> list[StreamEntry]:
        while not self.buffer:
            failure = self.router.failure
            if failure is not None and failure is not self._raised:
                self._raised = failure
                raise self.router.redis._unavailable(self.what, failure)
            self._ready = trio.Event()
            await self._ready.wait()
        entries = list(self.buffer)
        self.buffer.clear()
        if self.starved:
            self.starved = False
            self.router.changed()
        return entries


class StreamRouter:
    """Reads every followed stream with one blocking ``XREAD`` on a connection of its own
    (see the module docstring)."""

    def __init__(self, redis: LeanRedis, connection: RespConnection) -> None:
        self.redis = redis
        self.connection = connection
        self.feeds: dict[str, list[RoutedFeed]] = {}
        #: The last read's failure, until a read succeeds.
        self.failure: BaseException | None = None
        #: Bumped when a follower needs a new read (it came, or it has room again).
        self._generation = 0
        #: The read in progress: the generation it was built at, and its connection's id.
        self._reading: tuple[int, int] | None = None
        #: Where the read in progress starts, per stream.
        self._starts: dict[str, tuple[str, tuple[int, int]]] = {}
        self._idle = trio.Event()
        self._interrupt = trio.Event()

    def add(self, feed: RoutedFeed) -> None:
        self.feeds.setdefault(feed.key, []).append(feed)
        start = self._starts.get(feed.key) if self._reading is not None else None
        if start is not None and start[1] <= feed.position:
            return  # the read in progress serves it already (a new ``ask`` after the last)
        self.changed()

    def remove(self, feed: RoutedFeed) -> None:
        feeds = self.feeds.get(feed.key)
        if feeds is not None and feed in feeds:
            feeds.remove(feed)
            if not feeds:
                del self.feeds[feed.key]

    def changed(self) -> None:
        """A follower needs a read that includes it."""
        self._generation += 1
        self._idle.set()
        if self._reading is not None:
            self._interrupt.set()

    async def run(self) -> None:
        delay = 0.1
        block_timeout = FOLLOW_BLOCK_MS / 1000 + self.redis.target.timeout
        while True:
            generation = self._generation
            starts: dict[str, tuple[str, tuple[int, int]]] = {}
            for key, feeds in self.feeds.items():
                for feed in feeds:
                    if not feed.room:
                        feed.starved = True
                        continue
                    start = starts.get(key)
                    if start is None or feed.position < start[1]:
                        starts[key] = (feed.last, feed.position)
            if not starts:
                self._idle = trio.Event()
                await self._idle.wait()
                continue
            args: list[Arg] = ["XREAD", "COUNT", FOLLOW_COUNT, "BLOCK", FOLLOW_BLOCK_MS]
            args += ["STREAMS", *starts.keys(), *(last for last, _ in starts.values())]
            try:
                client_id = await self.connection.connect()
                if generation != self._generation:
                    continue  # a follower came meanwhile: read for it too
                self._reading, self._starts = (generation, client_id), starts
                try:
                    reply = await self.connection.execute(*args, reply_within=block_timeout)
                finally:
                    self._reading = None
            except (RespError, OSError) as exc:
                self.failure = exc
                for feeds in self.feeds.values():
                    for feed in feeds:
                        feed.wake()
                await trio.sleep(delay)
                delay = min(1.0, delay * 2)
                continue
            delay = 0.1
            self.failure = None
            for raw_key, raw_entries in reply or ():
                key = raw_key.decode()
                followers = self.feeds.get(key)
                start = starts.get(key)
                if followers and start is not None:
                    self._deliver(followers, start[1], stream_entries(raw_entries))

    @staticmethod
    def _deliver(
        feeds: list[RoutedFeed], start: tuple[int, int], entries: list[StreamEntry]
    ) -> None:
        """``entries`` (those after ``start``, with none skipped) to each follower they
        continue, as far as its buffer holds."""
        positions = [stream_id(entry_id) for entry_id, _ in entries]
        for feed in feeds:
            if feed.position < start:
                continue  # it came after the read began, further back: its own read next
            room = FOLLOW_BUFFER - len(feed.buffer)
            taken = 0
            for entry, position in zip(entries, positions, strict=True):
                if position <= feed.position:
                    continue
                if taken == room:
                    feed.starved = True
                    break
                feed.buffer.append(entry)
                feed.last, feed.position = entry[0], position
                taken += 1
            if taken:
                feed.wake()

    async def interrupt(self) -> None:
        """Interrupt the read in progress when a follower needs a new one (``CLIENT
        UNBLOCK``, from the command connection, until the read ends or a newer one began)."""
        commands = self.redis._commands
        while True:
            await self._interrupt.wait()
            self._interrupt = trio.Event()
            while True:
                reading = self._reading
                if reading is None or reading[0] >= self._generation:
                    break
                try:
                    unblocked = await commands.execute("CLIENT", "UNBLOCK", reading[1])
                except (RespError, OSError):
                    break  # the read ends by itself (its block), or fails
                if unblocked:
                    break
                # Not blocked yet (the read is on its way) or not any more: look again soon.
                await trio.sleep(0.002)
