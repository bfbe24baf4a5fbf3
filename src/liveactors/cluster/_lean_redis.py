"""The :class:`~._redis.Redis` of one server and of Sentinel's primary: the lean client, RESP on
trio directly (about 20 µs of CPU per command, against 150-185 µs through coredis).

The connections, per client: one pipelined connection (``_connection.py``) that every command
of every task shares (a command waits behind the bytes of those sent before it: about 5 ms
behind a 4 MiB one, on loopback); one that only the stream router (``_router.py``) uses for
its blocking reads; one per channel subscription (``_subscriber.py``); one per blocking
:meth:`~._redis.Redis.xread` while it waits (two are kept for the next). With Sentinel, each
new connection asks the sentinels where the primary is (so a failover is followed: a
connection to a demoted primary fails, or is dropped at its first ``READONLY`` reply, and the
next asks again) and checks that the server it reached is a primary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

import trio

from ._connection import RespConnection
from ._redis import ClusterUnavailable, Redis, ScriptCall, StreamFeed
from ._resp import (
    Arg,
    NoScriptError,
    RespError,
    StreamEntry,
    script_sha,
    stream_entries,
    text,
)
from ._router import RoutedFeed, StreamRouter
from ._subscriber import RespSubscriber

if TYPE_CHECKING:
    from ._target import RedisTarget

__all__ = ["LeanRedis"]

#: Blocking-read connections kept for the next :meth:`Redis.xread` with ``block``.
_SPARE_BLOCKING: Final = 2


class LeanRedis(Redis):
    """:class:`~._redis.Redis` on ``_connection.py``'s connections."""

    def __init__(self, target: RedisTarget, nursery: trio.Nursery) -> None:
        super().__init__(target, nursery)
        self._locate = target._locator()
        self._primary = target.kind == "sentinel"
        self._commands = self._connection()
        self._spares: list[RespConnection] = []
        self._router: StreamRouter | None = None
        self._closed = False

    def _connection(self) -> RespConnection:
        return RespConnection(
            self._nursery,
            self._locate,
            self.target._login(),
            timeout=self.target.timeout,
            primary=self._primary,
        )

    def close(self) -> None:
        self._closed = True
        self._commands.close()
        for spare in self._spares:
            spare.close()
        if self._router is not None:
            self._router.connection.close()

    async def _run(self, what: str, *args: Arg, secrets: Iterable[str] = ()) -> Any:
        try:
            return await self._commands.execute(*args)
        except (RespError, OSError) as exc:
            raise self._unavailable(what, exc, secrets) from None

    async def ping(self) -> str:
        return str(text(await self._run("ping the server", "PING")))

    async def script(
        self,
        what: str,
        source: str,
        keys: Sequence[str],
        args: Sequence[Arg],
        *,
        secrets: Iterable[str] = (),
    ) -> Any:
        try:
            return text(await self._commands.evalsha(source, keys, args))
        except (RespError, OSError) as exc:
            raise self._unavailable(what, exc, secrets) from None

    async def scripts(
        self,
        what: str,
        source: str,
        calls: Sequence[ScriptCall],
        *,
        secrets: Iterable[str] = (),
    ) -> list[Any]:
        sha = script_sha(source)
        commands = [("EVALSHA", sha, len(keys), *keys, *args) for keys, args in calls]
        try:
            replies = await self._commands.pipeline(commands)
            missing = [n for n, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if missing:  # those did not run: load the script and run them again
                await self._commands.execute("SCRIPT", "LOAD", source)
                again = await self._commands.pipeline([commands[n] for n in missing])
                for n, reply in zip(missing, again, strict=True):
                    replies[n] = reply
            for reply in replies:
                if isinstance(reply, RespError):
                    raise reply
        except (RespError, OSError) as exc:
            raise self._unavailable(what, exc, secrets) from None
        return [text(reply) for reply in replies]

    async def hget(self, what: str, key: str, field: str) -> str | None:
        value = await self._run(what, "HGET", key, field)
        return None if value is None else str(value.decode())

    async def hmget(self, what: str, key: str, fields: Sequence[str]) -> list[str | None]:
        values = await self._run(what, "HMGET", key, *fields)
        return [None if v is None else v.decode() for v in values]

    async def hgetall(self, what: str, key: str) -> dict[str, str]:
        flat = text(await self._run(what, "HGETALL", key))
        return dict(zip(flat[::2], flat[1::2], strict=True))

    async def zadd(
        self, what: str, key: str, members: Mapping[str, float], *, nx: bool = False
    ) -> int:
        args: list[Arg] = ["ZADD", key]
        if nx:
            args.append("NX")
        for member, score in members.items():
            args += [score, member]
        return int(await self._run(what, *args))

    async def zrem(self, what: str, key: str, members: Sequence[str]) -> int:
        return int(await self._run(what, "ZREM", key, *members))

    async def zrange(self, what: str, key: str, start: int = 0, stop: int = -1) -> list[str]:
        return list(text(await self._run(what, "ZRANGE", key, start, stop)))

    async def zscore(self, what: str, key: str, member: str) -> float | None:
        score = await self._run(what, "ZSCORE", key, member)
        return None if score is None else float(score)

    async def publish(self, what: str, channel: str, message: str) -> int:
        return int(await self._run(what, "PUBLISH", channel, message))

    async def xrange(
        self, what: str, key: str, start: str = "-", end: str = "+", *, count: int | None = None
    ) -> list[StreamEntry]:
        args: list[Arg] = ["XRANGE", key, start, end]
        if count is not None:
            args += ["COUNT", count]
        return stream_entries(await self._run(what, *args))

    async def xread(
        self,
        what: str,
        streams: Mapping[str, str],
        *,
        count: int | None = None,
        block: int | None = None,
    ) -> dict[str, list[StreamEntry]]:
        args: list[Arg] = ["XREAD"]
        if count is not None:
            args += ["COUNT", count]
        if block is not None:
            args += ["BLOCK", block]
        args += ["STREAMS", *streams.keys(), *streams.values()]
        if block is None:
            reply = await self._run(what, *args)
        else:
            reply = await self._blocking_read(what, args, block)
        return {key.decode(): stream_entries(entries) for key, entries in reply or ()}

    async def _blocking_read(self, what: str, args: list[Arg], block: int) -> Any:
        """``args`` on a connection of its own (kept for the next one if it ends well)."""
        connection = self._spares.pop() if self._spares else self._connection()
        reusable = False
        try:
            reply = await connection.execute(*args, reply_within=block / 1000 + self.target.timeout)
            reusable = True
            return reply
        except (RespError, OSError) as exc:
            raise self._unavailable(what, exc) from None
        finally:
            if reusable and not self._closed and len(self._spares) < _SPARE_BLOCKING:
                self._spares.append(connection)
            else:
                connection.close()

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
    ) -> AsyncIterator[RespSubscriber]:
        what = f"listen to {', '.join(channels)}"
        subscriber = RespSubscriber(
            self._locate,
            self.target._login(),
            channels,
            timeout=self.target.timeout,
            primary=self._primary,
            on_subscribed=on_subscribed,
            on_error=lambda exc: on_error(self._unavailable(what, exc)),
        )
        try:
            yield subscriber
        finally:
            await subscriber.aclose()

    def follow(self, what: str, key: str, after: str) -> AbstractAsyncContextManager[StreamFeed]:
        return self._follow(what, key, after)

    @asynccontextmanager
    async def _follow(self, what: str, key: str, after: str) -> AsyncIterator[StreamFeed]:
        router = self._router
        if router is None:
            router = self._router = StreamRouter(self, self._connection())
            self._nursery.start_soon(router.run, name="liveactors.cluster.stream-router")
            self._nursery.start_soon(router.interrupt, name="liveactors.cluster.router-unblock")
        feed = RoutedFeed(router, what, key, after)
        router.add(feed)
        try:
            yield feed
        finally:
            router.remove(feed)
