"""The :class:`~._redis.Redis` of a Redis Cluster, on coredis: it routes each command and
script to the node that serves its keys, and follows the cluster's layout as it changes.

It costs several times the CPU per command of the lean client (150-185 µs against about
20 µs), so a cluster of workers on a Redis Cluster costs more CPU per input than on one server
or Sentinel. Blocking reads go through a second coredis client, whose pool is apart from the
commands' one, so they never starve them; each follower of a stream does its own blocking
reads there (a multi-key ``XREAD`` cannot span slots, and every conversation has its own).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, Literal

import coredis
import trio
from coredis.connection import TCPLocation
from coredis.retry import NoRetryPolicy
from coredis.tokens import PureToken

from ._redis import (
    FOLLOW_BLOCK_MS,
    FOLLOW_BUFFER,
    ClusterUnavailable,
    Redis,
    ScriptCall,
    StreamFeed,
)
from ._resp import Arg, StreamEntry, text

if TYPE_CHECKING:
    from ._target import RedisTarget

__all__ = ["ClusterRedis", "open_cluster_redis"]

#: No automatic retries in coredis either (see ``_redis.py``).
_NO_RETRY: Final = NoRetryPolicy()
#: At most this many command connections to each node.
_MAX_CONNECTIONS: Final = 64
#: At most this many connections to each node for blocking reads (one per follower while it
#: waits).
_MAX_BLOCKING: Final = 1024


@asynccontextmanager
async def open_cluster_redis(
    target: RedisTarget, nursery: trio.Nursery
) -> AsyncIterator[ClusterRedis]:
    """A :class:`ClusterRedis` whose coredis clients are entered (they learn the layout from
    the nodes listed, so entering fails when none answers)."""
    async with _coredis(target) as commands, _coredis(target, blocking=True) as blocking:
        yield ClusterRedis(target, nursery, commands, blocking)


@asynccontextmanager
async def _coredis(
    target: RedisTarget, *, blocking: bool = False
) -> AsyncIterator[coredis.RedisCluster[bytes]]:
    """A coredis client of the Redis Cluster, entered. ``blocking``: for blocking reads (no
    bound on a reply: the caller bounds it; a pool of its own)."""
    top = target._topology
    client: coredis.RedisCluster[bytes] = coredis.RedisCluster(
        startup_nodes=[TCPLocation(host, port) for host, port in top.nodes],
        username=top.username,
        password=top.password,
        connect_timeout=target.timeout,
        stream_timeout=None if blocking else target.timeout,
        pool_timeout=target.timeout,
        ssl_context=target._tls_context(),
        max_connections=_MAX_BLOCKING if blocking else _MAX_CONNECTIONS,
        max_connections_per_node=True,
        decode_responses=False,
        retry_policy=_NO_RETRY,
    )
    async with client:
        yield client


class ClusterRedis(Redis):
    """:class:`~._redis.Redis` on coredis's ``RedisCluster`` (see the module docstring)."""

    def __init__(
        self,
        target: RedisTarget,
        nursery: trio.Nursery,
        client: coredis.RedisCluster[bytes],
        blocking: coredis.RedisCluster[bytes],
    ) -> None:
        super().__init__(target, nursery)
        self.client = client
        self._blocking = blocking
        self._scripts: dict[str, Any] = {}

    def _script(self, source: str) -> Any:
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self.client.register_script(source)
        return script

    async def ping(self) -> str:
        return str(text(await self.call("ping the server", self.client.ping())))

    async def script(
        self,
        what: str,
        source: str,
        keys: Sequence[str],
        args: Sequence[Arg],
        *,
        secrets: Iterable[str] = (),
    ) -> Any:
        reply = await self.call(what, self._script(source)(list(keys), list(args)), secrets=secrets)
        return text(reply)

    async def scripts(
        self,
        what: str,
        source: str,
        calls: Sequence[ScriptCall],
        *,
        secrets: Iterable[str] = (),
    ) -> list[Any]:
        script = self._script(source)

        async def pipelined() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                requests = [script(list(keys), list(args), client=pipe) for keys, args in calls]
            return [text(await request) for request in requests]

        return await self.call(what, pipelined(), secrets=secrets)

    async def hget(self, what: str, key: str, field: str) -> str | None:
        return _text_or_none(await self.call(what, self.client.hget(key, field)))

    async def hmget(self, what: str, key: str, fields: Sequence[str]) -> list[str | None]:
        values = await self.call(what, self.client.hmget(key, list(fields)))
        return [_text_or_none(v) for v in values]

    async def hgetall(self, what: str, key: str) -> dict[str, str]:
        values = await self.call(what, self.client.hgetall(key))
        return {_str(k): _str(v) for k, v in values.items()}

    async def zadd(
        self, what: str, key: str, members: Mapping[str, float], *, nx: bool = False
    ) -> int:
        condition: Literal[PureToken.NX] | None = PureToken.NX if nx else None
        scores: dict[str | bytes, int | float] = {m: s for m, s in members.items()}
        added = await self.call(what, self.client.zadd(key, scores, condition=condition))
        return int(added)

    async def zrem(self, what: str, key: str, members: Sequence[str]) -> int:
        return int(await self.call(what, self.client.zrem(key, list(members))))

    async def zrange(self, what: str, key: str, start: int = 0, stop: int = -1) -> list[str]:
        return [_str(m) for m in await self.call(what, self.client.zrange(key, start, stop))]

    async def zscore(self, what: str, key: str, member: str) -> float | None:
        score = await self.call(what, self.client.zscore(key, member))
        return None if score is None else float(score)

    async def publish(self, what: str, channel: str, message: str) -> int:
        return int(await self.call(what, self.client.publish(channel, message)))

    async def xrange(
        self, what: str, key: str, start: str = "-", end: str = "+", *, count: int | None = None
    ) -> list[StreamEntry]:
        entries = await self.call(what, self.client.xrange(key, start, end, count=count))
        return [_entry(e) for e in entries]

    async def xread(
        self,
        what: str,
        streams: Mapping[str, str],
        *,
        count: int | None = None,
        block: int | None = None,
    ) -> dict[str, list[StreamEntry]]:
        if block is None:
            reply = await self.call(what, self.client.xread(dict(streams), count=count))
        else:
            try:
                with trio.fail_after(block / 1000 + self.target.timeout):
                    reply = await self._blocking.xread(dict(streams), count=count, block=block)
            except Exception as exc:
                raise self._unavailable(what, exc) from None
        return {_str(k): [_entry(e) for e in v] for k, v in (reply or {}).items()}

    def subscribe(
        self,
        channels: Sequence[str],
        *,
        on_subscribed: Callable[[], None] = lambda: None,
        on_error: Callable[[ClusterUnavailable], None] = lambda exc: None,
    ) -> AbstractAsyncContextManager[AsyncIterator[tuple[str, bytes]]]:
        return self._subscription(channels, on_subscribed, on_error)

    @asynccontextmanager
    async def _subscription(
        self,
        channels: Sequence[str],
        on_subscribed: Callable[[], None],
        on_error: Callable[[ClusterUnavailable], None],
    ) -> AsyncIterator[trio.MemoryReceiveChannel[tuple[str, bytes]]]:
        """coredis's subscription is entered and left in one task: it runs in a task of this
        client's nursery, and its messages come through a channel."""
        what = f"listen to {', '.join(channels)}"
        send, receive = trio.open_memory_channel[tuple[str, bytes]](1024)
        scope = trio.CancelScope()

        async def listen() -> None:
            delay = 0.1
            with scope:
                while True:
                    try:
                        async with self.client.pubsub(
                            channels=list(channels), retry_policy=_NO_RETRY
                        ) as pubsub:
                            delay = 0.1
                            on_subscribed()
                            async for message in pubsub:
                                if message.get("type") == "message":
                                    data = message["data"]
                                    payload = (
                                        data if isinstance(data, bytes) else str(data).encode()
                                    )
                                    await send.send((_str(message["channel"]), payload))
                    except Exception as exc:
                        on_error(self._unavailable(what, exc))
                    await trio.sleep(delay)
                    delay = min(2.0, delay * 2)

        self._nursery.start_soon(listen, name="liveactors.cluster.subscription")
        try:
            yield receive
        finally:
            scope.cancel()
            receive.close()

    def follow(self, what: str, key: str, after: str) -> AbstractAsyncContextManager[StreamFeed]:
        return self._follow(what, key, after)

    @asynccontextmanager
    async def _follow(self, what: str, key: str, after: str) -> AsyncIterator[StreamFeed]:
        yield _BlockingFeed(self, what, key, after)


class _BlockingFeed(StreamFeed):
    """A follower that does its own blocking reads (see the module docstring)."""

    def __init__(self, redis: ClusterRedis, what: str, key: str, after: str) -> None:
        self.redis = redis
        self.what = what
        self.key = key
        self.last = after

    async def read(self) -> list[StreamEntry]:
        while True:
            reply = await self.redis.xread(
                self.what, {self.key: self.last}, count=FOLLOW_BUFFER, block=FOLLOW_BLOCK_MS
            )
            entries = reply.get(self.key)
            if entries:
                self.last = entries[-1][0]
                return entries


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _text_or_none(value: Any) -> str | None:
    return None if value is None else _str(value)


def _entry(entry: Any) -> StreamEntry:
    fields = {
        _str(k): v if isinstance(v, bytes) else str(v).encode()
        for k, v in entry.field_values.items()
    }
    return _str(entry.identifier), fields
