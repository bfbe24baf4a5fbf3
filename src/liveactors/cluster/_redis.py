"""Redis / Valkey as the cluster uses it: the :class:`Redis` facade that every other module
talks to, whatever the topology, and its one error, :class:`ClusterUnavailable`.

:class:`Redis` has one typed method per thing the cluster does (scripts, stream reads,
hashes, sorted sets, publishing), a subscription to channels (:meth:`Redis.subscribe`) and a
follower of a stream (:meth:`Redis.follow`). A client lives as long as the ``async with`` of
:meth:`~._target.RedisTarget.open` that opened it. Every failure to talk to the server becomes
:class:`ClusterUnavailable` naming what was being done and the server, with the passwords
(and any secret the caller names) redacted; a cancellation passes through untouched.
Nothing is retried behind the caller's back (a script run again after its reply was lost
could append input twice), except a script the server did not have (``NOSCRIPT``: it did not
run), which is loaded and called again.

Two implementations, by topology:

* **One server, and Sentinel's primary**: ``_lean_redis.py``, RESP on trio directly (about
  20 µs of CPU per command, against 150-185 µs through coredis), whose followers are fed by
  one stream router per client (``_router.py``).
* **A Redis Cluster**: ``_cluster_redis.py``, on coredis, which routes each command to the
  node that serves its keys (several times the CPU per command).

On a Redis Cluster every command and script goes to the node that serves its keys: a
conversation's keys share the hash tag ``{<name>}`` and the cluster-wide ones ``{cluster}``
(see ``_keys.py``), so each script's keys are in one slot. Channels are not keys: a message
published on any node, from a script too, reaches the subscribers of every node.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Final, TypeVar

import trio

from .._errors import LiveError
from ._resp import Arg, StreamEntry

if TYPE_CHECKING:
    from ._target import RedisTarget

__all__ = [
    "FOLLOW_BLOCK_MS",
    "FOLLOW_BUFFER",
    "FOLLOW_COUNT",
    "ClusterUnavailable",
    "Redis",
    "ScriptCall",
    "StreamEntry",
    "StreamFeed",
]

T = TypeVar("T")

#: A follower's blocking reads: entries per read, milliseconds each read blocks.
FOLLOW_COUNT: Final = 128
FOLLOW_BLOCK_MS: Final = 5000
#: Entries a follower's buffer holds at most (it takes part in a read only while a whole
#: read fits).
FOLLOW_BUFFER: Final = 2 * FOLLOW_COUNT


class ClusterUnavailable(LiveError):
    """Redis or Valkey could not do what liveactors asked: it is down, unreachable, refused the
    credentials, or timed out. The message names the operation and the server; passwords and
    handles are never in it."""


#: A script call of :meth:`Redis.scripts`: its keys and its arguments.
ScriptCall = tuple[Sequence[str], Sequence[Arg]]


class StreamFeed:
    """The entries of one stream after a given id, as :meth:`Redis.follow` delivers them."""

    #: The stream's key.
    key: str

    async def read(self) -> list[StreamEntry]:
        """The next entries (at least one), oldest first: each after the last one read, with
        none skipped; waits for them. :class:`ClusterUnavailable` when a read failed (read
        again to go on: the next read starts where the last one ended)."""
        raise NotImplementedError


class Redis:
    """A connected client (from :meth:`RedisTarget.open`): one method per thing the cluster
    does, each naming ``what`` it does in its errors (see the module docstring)."""

    def __init__(self, target: RedisTarget, nursery: trio.Nursery) -> None:
        self.target = target
        self._nursery = nursery

    def __repr__(self) -> str:
        return f"<Redis {self.target.url}>"

    def _unavailable(
        self, what: str, exc: BaseException, secrets: Iterable[str] = ()
    ) -> ClusterUnavailable:
        if isinstance(exc, trio.TooSlowError):
            exc = TimeoutError("no reply in time")
        return self.target.unavailable(what, exc, secrets)

    async def call(self, what: str, operation: Awaitable[T], *, secrets: Iterable[str] = ()) -> T:
        """Await ``operation``; a failure becomes :class:`ClusterUnavailable` naming ``what``.
        It waits at most the target's ``timeout``."""
        try:
            with trio.fail_after(self.target.timeout):
                return await operation
        except ClusterUnavailable:
            raise
        except Exception as exc:
            raise self._unavailable(what, exc, secrets) from None

    # -- the operations (each implementation's) ---------------------------------------------

    async def ping(self) -> str:
        """``PONG``, once the server answers."""
        raise NotImplementedError

    async def script(
        self,
        what: str,
        source: str,
        keys: Sequence[str],
        args: Sequence[Arg],
        *,
        secrets: Iterable[str] = (),
    ) -> Any:
        """Run a Lua script (by its SHA; loaded when the server does not have it; on a cluster,
        on the node that serves ``keys``, which must share one hash slot). Its reply with
        every string decoded."""
        raise NotImplementedError

    async def scripts(
        self,
        what: str,
        source: str,
        calls: Sequence[ScriptCall],
        *,
        secrets: Iterable[str] = (),
    ) -> list[Any]:
        """Run a Lua script once per ``(keys, args)`` of ``calls``, at once (a pipeline; on a
        cluster, each on its node); their replies, in order. One that failed fails them all
        (some may have run)."""
        raise NotImplementedError

    async def hget(self, what: str, key: str, field: str) -> str | None:
        raise NotImplementedError

    async def hmget(self, what: str, key: str, fields: Sequence[str]) -> list[str | None]:
        raise NotImplementedError

    async def hgetall(self, what: str, key: str) -> dict[str, str]:
        raise NotImplementedError

    async def zadd(
        self, what: str, key: str, members: Mapping[str, float], *, nx: bool = False
    ) -> int:
        """Add ``members`` with their scores (``nx``: only those not there yet); how many
        were added."""
        raise NotImplementedError

    async def zrem(self, what: str, key: str, members: Sequence[str]) -> int:
        raise NotImplementedError

    async def zrange(self, what: str, key: str, start: int = 0, stop: int = -1) -> list[str]:
        raise NotImplementedError

    async def zscore(self, what: str, key: str, member: str) -> float | None:
        raise NotImplementedError

    async def publish(self, what: str, channel: str, message: str) -> int:
        """Publish ``message``; how many subscribers received it (on a cluster, on the node
        that took it)."""
        raise NotImplementedError

    async def xrange(
        self, what: str, key: str, start: str = "-", end: str = "+", *, count: int | None = None
    ) -> list[StreamEntry]:
        """A stream's entries from ``start`` to ``end`` (ids; ``(id`` excludes it)."""
        raise NotImplementedError

    async def xread(
        self,
        what: str,
        streams: Mapping[str, str],
        *,
        count: int | None = None,
        block: int | None = None,
    ) -> dict[str, list[StreamEntry]]:
        """The entries after each stream's id (``{key: id}``), per stream that has some;
        ``block``: wait up to that many milliseconds for one (on a connection of its own: a
        blocking read never holds up the commands). To follow a stream, see :meth:`follow`."""
        raise NotImplementedError

    def subscribe(
        self,
        channels: Sequence[str],
        *,
        on_subscribed: Callable[[], None] = lambda: None,
        on_error: Callable[[ClusterUnavailable], None] = lambda exc: None,
    ) -> AbstractAsyncContextManager[AsyncIterator[tuple[str, bytes]]]:
        """``async with redis.subscribe(channels) as messages: async for channel, data in
        messages``, on a connection of its own. After a failure it subscribes again, by
        itself: ``on_error`` hears of each failure, ``on_subscribed`` of each (re)subscription
        (messages published while it was not subscribed are lost: look for what they said)."""
        raise NotImplementedError

    def follow(self, what: str, key: str, after: str) -> AbstractAsyncContextManager[StreamFeed]:
        """``async with redis.follow(what, key, after) as feed``: the entries of stream
        ``key`` after id ``after``, read by the stream router (``_router.py``; each follower
        reads for itself on a Redis Cluster); ``feed.read()`` raises
        :class:`ClusterUnavailable` naming ``what``."""
        raise NotImplementedError
