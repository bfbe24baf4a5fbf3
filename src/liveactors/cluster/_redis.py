"""Redis / Valkey as the cluster uses it: where the server is (one node, a Redis Cluster, or a
primary found through Sentinel), its URL with every password hidden, a client that lives as
long as the ``async with`` that opened it, and errors translated once.

:class:`Redis` has one typed method per thing the cluster does (scripts, stream reads,
hashes, sorted sets, publishing), a subscription to channels (:meth:`Redis.subscribe`) and a
follower of a stream (:meth:`Redis.follow`). Every failure to talk to the server becomes
:class:`ClusterUnavailable` naming what was being done and the server, with the passwords
(and any secret the caller names) redacted; a cancellation passes through untouched.
Nothing is retried behind the caller's back (a script run again after its reply was lost
could append input twice), except a script the server did not have (``NOSCRIPT``: it did not
run), which is loaded and called again.

Two implementations, by topology:

* **One server, and Sentinel's primary**: the lean client of ``_connection.py``, RESP on trio
  directly (about 20 µs of CPU per command, against 150-185 µs through coredis). The
  connections, per :class:`Redis`: one pipelined connection that every command of every task
  shares (a command waits behind the bytes of those sent before it: about 5 ms behind a
  4 MiB one, on loopback); one that only the *stream router* uses for its blocking reads
  (below); one per channel subscription; one per blocking :meth:`Redis.xread` while it waits
  (two are kept for the next). With Sentinel, each new connection asks the sentinels where
  the primary is (so a failover is followed: a connection to a demoted primary fails, or is
  dropped at its first ``READONLY`` reply, and the next asks again) and checks that the
  server it reached is a primary.
* **A Redis Cluster**: coredis, which routes each command and script to the node that serves
  its keys, and follows the cluster's layout as it changes. It costs several times the CPU
  per command (150-185 µs), so a cluster of workers on a Redis Cluster costs more CPU per
  input than on one server or Sentinel. Blocking reads go through a second coredis client,
  whose pool is apart from the commands' one, so they never starve them.

**The stream router** (one server and Sentinel). Each :meth:`Redis.follow` registers a
follower of one stream (a conversation's events) with a bounded buffer. One task, started on
the first follower and living in this client's nursery, reads every followed stream with
one blocking ``XREAD COUNT n BLOCK ms STREAMS k1..kn id1..idn`` on its own connection and
hands each entry to the followers of its stream. A follower whose buffer is too full to take
another read is left out of the reads until its reader makes room, so a follower that does
not read holds back only itself. A new follower (or one that has room again) interrupts the
read in progress with ``CLIENT UNBLOCK`` from the command connection, so it is read from at
once; unless that read covers it already (the next ``ask`` on a conversation just read).
When the router's read fails, each follower's next read raises it (once per failure), and
the router tries again after a growing delay. On a Redis Cluster a multi-key ``XREAD``
cannot span slots, and every conversation has its own slot, so each follower does its own
blocking reads there, on the blocking client.

On a Redis Cluster every command and script goes to the node that serves its keys: a
conversation's keys share the hash tag ``{<name>}`` and the cluster-wide ones ``{cluster}``
(see ``_keys.py``), so each script's keys are in one slot. Channels are not keys: a message
published on any node, from a script too, reaches the subscribers of every node.
"""

from __future__ import annotations

import logging
import math
import os
import ssl
from collections import deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Final, Literal, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import attrs
import coredis
import trio
from coredis.connection import TCPLocation
from coredis.retry import NoRetryPolicy
from coredis.tokens import PureToken

from .._errors import LiveError
from .._secrets import MIN_SECRET, REDACTED, longest_first, redact
from ._connection import (
    Endpoint,
    Login,
    RespConnection,
    RespSubscriber,
    ask_sentinels,
)
from ._resp import (
    Arg,
    NoScriptError,
    RespError,
    StreamEntry,
    script_sha,
    stream_entries,
    stream_id,
    text,
)

__all__ = ["ClusterUnavailable", "Redis", "RedisTarget", "StreamEntry", "StreamFeed"]

T = TypeVar("T")

log = logging.getLogger("liveactors.cluster")

_PLAIN: Final = ("redis", "rediss", "unix")
_CLUSTER: Final = ("redis+cluster", "rediss+cluster")
_SENTINEL: Final = ("redis+sentinel", "rediss+sentinel")

#: The URL forms, as errors list them.
FORMS: Final = (
    "redis://[user:password@]host[:port][/db]",
    "rediss://[user:password@]host[:port][/db] (TLS)",
    "unix://[user:password@]/path/to.sock[?db=N]",
    "redis+cluster://[user:password@]host:port[,host:port...]",
    "rediss+cluster://... (TLS)",
    "redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]",
    "rediss+sentinel://... (TLS)",
)

#: Query parameters that hold a secret: redacted wherever a URL is shown.
_SECRET_PARAMS: Final = frozenset({"password", "sentinel_password"})
_SSL_PARAMS: Final = frozenset(
    {"ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname"}
)
_CLUSTER_PARAMS: Final = frozenset({"username", "password"}) | _SSL_PARAMS
_PLAIN_PARAMS: Final = _CLUSTER_PARAMS | {"db"}
_SENTINEL_PARAMS: Final = _PLAIN_PARAMS | {"sentinel_username", "sentinel_password"}
#: No automatic retries in coredis either (see the module docstring).
_NO_RETRY: Final = NoRetryPolicy()
_CERT_REQS: Final = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})
#: coredis (Redis Cluster): at most this many command connections to each node.
_MAX_CONNECTIONS: Final = 64
#: coredis (Redis Cluster): at most this many connections to each node for blocking reads
#: (one per follower while it waits).
_MAX_BLOCKING: Final = 1024
#: What the connections call themselves (``CLIENT SETNAME``; ``CLIENT LIST`` shows it).
_NAME: Final = "liveactors"

#: A follower's blocking reads: entries per read, milliseconds each read blocks.
FOLLOW_COUNT: Final = 128
FOLLOW_BLOCK_MS: Final = 5000
#: Entries a follower's buffer holds at most (it takes part in a read only while a whole
#: read fits).
FOLLOW_BUFFER: Final = 2 * FOLLOW_COUNT
#: Blocking-read connections kept for the next :meth:`Redis.xread` with ``block``.
_SPARE_BLOCKING: Final = 2


class ClusterUnavailable(LiveError):
    """Redis or Valkey could not do what liveactors asked: it is down, unreachable, refused the
    credentials, or timed out. The message names the operation and the server; passwords and
    handles are never in it."""


@attrs.frozen
class _Topology:
    """A URL taken apart."""

    kind: Literal["plain", "cluster", "sentinel"]
    tls: bool = False
    #: The server (plain), the nodes to start from (cluster), the sentinels (sentinel).
    nodes: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    #: Sentinel: the monitored primary's name, its database, and the sentinels' own login.
    service: str = ""
    db: int = 0
    sentinel_username: str | None = None
    sentinel_password: str | None = attrs.field(default=None, repr=False)
    ssl_options: tuple[tuple[str, str], ...] = ()
    #: ``unix://``: the socket's path.
    path: str | None = None


class RedisTarget:
    """Where the server is and how to reach it; ``repr``, :attr:`url` and errors never show a
    password.

    The URL is one of:

    * ``redis://[user:password@]host[:port][/db]``: one server (``rediss://`` for TLS);
      ``unix://[user:password@]/path/to.sock[?db=N]`` through a Unix socket.
    * ``redis+cluster://[user:password@]host:port[,host:port...]``: a Redis Cluster (or a
      Valkey cluster), found from any of the nodes listed (the others are discovered);
      ``rediss+cluster://`` for TLS. Database 0 only, as on any cluster.
    * ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]``: the primary
      that the sentinels listed know as ``service`` (asked again for each new connection,
      so a failover is followed);
      ``rediss+sentinel://`` for TLS to the sentinels and the data nodes alike. The user and
      password are the data nodes'; sentinels that require a login of their own take
      ``?sentinel_password=...`` (and ``&sentinel_username=...``). ``?db=N`` also works.

    The port defaults to 6379 (26379 for a sentinel). The user and password are
    percent-decoded (write ``%40`` for ``@``, ``%2C`` for ``,``, ``%2F`` for ``/``, ``%25`` for
    ``%``); ``?username=`` and ``?password=`` may carry them instead. TLS takes the
    ``ssl_context`` given, else one built from ``ssl_cert_reqs`` (none / optional / required),
    ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile`` and ``ssl_check_hostname`` in the query
    (certificates and host names verified unless they say otherwise).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "liveactors",
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        label: str = "Redis",
    ) -> None:
        scheme = urlsplit(url).scheme if isinstance(url, str) else ""
        if scheme not in (*_PLAIN, *_CLUSTER, *_SENTINEL):
            raise ValueError(
                f"the Redis URL must take one of these forms, not {scheme!r}://: "
                + "; ".join(FORMS)
            )
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix must be a non-empty string without braces: {prefix!r}")
        if isinstance(timeout, bool) or not (0 < timeout < math.inf):
            raise ValueError(f"timeout must be a finite number of seconds > 0: {timeout!r}")
        self._url = url
        self._topology = _parse(url)
        #: The data nodes' password as written in the URL (None without one).
        self.password = _password_of(url)
        #: Every password in the URL, as written and decoded: redacted from errors.
        self.secrets = _secrets_of(url)
        self.prefix = prefix
        self.timeout = float(timeout)
        self.ssl_context = ssl_context
        #: What errors call the server ("Redis", "handle store").
        self.label = label

    @property
    def url(self) -> str:
        """The URL with every password replaced by ``<redacted>``."""
        return _redact_url(self._url)

    @property
    def kind(self) -> Literal["plain", "cluster", "sentinel"]:
        """``"plain"`` (one server), ``"cluster"`` (Redis Cluster) or ``"sentinel"``."""
        return self._topology.kind

    def __repr__(self) -> str:
        return f"<RedisTarget {self.url} prefix={self.prefix!r}>"

    def unavailable(
        self, what: str, exc: BaseException, secrets: Iterable[str] = ()
    ) -> ClusterUnavailable:
        """``exc`` as the error users see: what failed, where, why; no secret in it."""
        leaf = _first_leaf(exc)
        hidden = longest_first(s for s in (*self.secrets, *secrets) if s and len(s) >= MIN_SECRET)
        detail = redact(f"{type(leaf).__name__}: {leaf}", hidden)
        return ClusterUnavailable(f"{self.label} at {self.url}: could not {what}: {detail}")

    @asynccontextmanager
    async def open(
        self, *, what: str = "connect", secrets: Iterable[str] = ()
    ) -> AsyncIterator[Redis]:
        """A client for the life of the ``async with`` (enter and leave it in one task; its
        connections' tasks live in a nursery of its own). ``what``: the operation a failure to
        enter names (only a Redis Cluster connects on entering: the others connect on first
        use, and their failures name the operation that needed the connection). The block's
        own errors come out as they are."""
        raised: BaseException | None = None
        entered = False
        try:
            async with self._client() as redis:
                entered = True
                try:
                    yield redis
                except BaseException as exc:
                    raised = exc
                    raise
        except BaseException as exc:
            if raised is not None:
                # The block's own error (a nursery may have wrapped it): as is.
                if exc is not raised and _sole_leaf(exc) is raised:
                    raise raised from None
                raise
            if isinstance(exc, ClusterUnavailable) or not isinstance(exc, Exception):
                raise
            raise self.unavailable(
                "talk to the server" if entered else what, exc, secrets
            ) from None

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[Redis]:
        async with trio.open_nursery() as nursery:
            redis: Redis
            if self._topology.kind == "cluster":
                async with self._coredis() as commands, self._coredis(blocking=True) as blocking:
                    redis = _ClusterRedis(self, nursery, commands, blocking)
                    try:
                        yield redis
                    finally:
                        nursery.cancel_scope.cancel()
            else:
                lean = _LeanRedis(self, nursery)
                try:
                    yield lean
                finally:
                    lean.close()
                    nursery.cancel_scope.cancel()

    @asynccontextmanager
    async def _coredis(
        self, *, blocking: bool = False
    ) -> AsyncIterator[coredis.RedisCluster[bytes]]:
        """A coredis client of the Redis Cluster, entered (it learns the layout from the nodes
        listed, so entering fails when none answers). ``blocking``: for blocking reads (no
        bound on a reply: the caller bounds it; a pool of its own)."""
        top = self._topology
        client: coredis.RedisCluster[bytes] = coredis.RedisCluster(
            startup_nodes=[TCPLocation(host, port) for host, port in top.nodes],
            username=top.username,
            password=top.password,
            connect_timeout=self.timeout,
            stream_timeout=None if blocking else self.timeout,
            pool_timeout=self.timeout,
            ssl_context=self._tls_context(),
            max_connections=_MAX_BLOCKING if blocking else _MAX_CONNECTIONS,
            max_connections_per_node=True,
            decode_responses=False,
            retry_policy=_NO_RETRY,
        )
        async with client:
            yield client

    def _login(self, name: str | None = _NAME) -> Login:
        top = self._topology
        return Login(top.username, top.password, top.db, name)

    def _locator(self) -> Callable[[], Awaitable[Endpoint]]:
        """Where to connect, asked for each new connection (Sentinel: the primary now)."""
        top = self._topology
        tls = self._tls_context()
        if top.kind == "sentinel":
            sentinels = [Endpoint(host, port, tls=tls) for host, port in top.nodes]
            login = Login(top.sentinel_username, top.sentinel_password)

            # A share of the connection's time for each sentinel, and one for the primary.
            each = self.timeout / (len(sentinels) + 1)

            async def primary() -> Endpoint:
                host, port = await ask_sentinels(sentinels, top.service, login, each=each)
                return Endpoint(host, port, tls=tls)

            return primary
        if top.path is not None:
            fixed = Endpoint(path=top.path)
        else:
            host, port = top.nodes[0]
            fixed = Endpoint(host, port, tls=tls)

        async def server() -> Endpoint:
            return fixed

        return server

    def _tls_context(self) -> ssl.SSLContext | None:
        """The TLS context: the one given (``redis://`` with an ``ssl_context`` uses TLS),
        else for ``rediss...`` one built from the query; None without TLS."""
        if self.ssl_context is not None:
            return self.ssl_context
        if not self._topology.tls:
            return None
        options = dict(self._topology.ssl_options)
        context = ssl.create_default_context()
        certfile, keyfile = options.get("ssl_certfile"), options.get("ssl_keyfile")
        if certfile and keyfile:
            context.load_cert_chain(certfile=certfile, keyfile=keyfile)
        if ca := options.get("ssl_ca_certs"):
            if os.path.isdir(ca):
                context.load_verify_locations(capath=ca)
            else:
                context.load_verify_locations(cafile=ca)
        # Verified by default, as HTTPS is: a client that sends a password over TLS must know
        # whom it sends it to. ``?ssl_cert_reqs=none`` / ``?ssl_check_hostname=false`` opt out.
        verify = _CERT_REQS[options.get("ssl_cert_reqs", "required")]
        context.check_hostname = (
            verify != ssl.CERT_NONE and options.get("ssl_check_hostname", "true") in _TRUE
        )
        context.verify_mode = verify
        return context


def _sole_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


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
        ``key`` after id ``after``, read by the stream router (see the module docstring);
        ``feed.read()`` raises :class:`ClusterUnavailable` naming ``what``."""
        raise NotImplementedError


# -- one server, Sentinel: the lean client --------------------------------------------------


class _LeanRedis(Redis):
    """:class:`Redis` on ``_connection.py``'s connections."""

    def __init__(self, target: RedisTarget, nursery: trio.Nursery) -> None:
        super().__init__(target, nursery)
        self._locate = target._locator()
        self._primary = target.kind == "sentinel"
        self._commands = self._connection()
        self._spares: list[RespConnection] = []
        self._router: _StreamRouter | None = None
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
            router = self._router = _StreamRouter(self, self._connection())
            self._nursery.start_soon(router.run, name="liveactors.cluster.stream-router")
            self._nursery.start_soon(router.interrupt, name="liveactors.cluster.router-unblock")
        feed = _RoutedFeed(router, what, key, after)
        router.add(feed)
        try:
            yield feed
        finally:
            router.remove(feed)


class _RoutedFeed(StreamFeed):
    """A follower of one stream, fed by the :class:`_StreamRouter`."""

    def __init__(self, router: _StreamRouter, what: str, key: str, after: str) -> None:
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


class _StreamRouter:
    """Reads every followed stream with one blocking ``XREAD`` on a connection of its own
    (see the module docstring)."""

    def __init__(self, redis: _LeanRedis, connection: RespConnection) -> None:
        self.redis = redis
        self.connection = connection
        self.feeds: dict[str, list[_RoutedFeed]] = {}
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

    def add(self, feed: _RoutedFeed) -> None:
        self.feeds.setdefault(feed.key, []).append(feed)
        start = self._starts.get(feed.key) if self._reading is not None else None
        if start is not None and start[1] <= feed.position:
            return  # the read in progress serves it already (a new ``ask`` after the last)
        self.changed()

    def remove(self, feed: _RoutedFeed) -> None:
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
        feeds: list[_RoutedFeed], start: tuple[int, int], entries: list[StreamEntry]
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


# -- Redis Cluster: coredis ----------------------------------------------------------------


class _ClusterRedis(Redis):
    """:class:`Redis` on coredis's ``RedisCluster`` (see the module docstring)."""

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
    """A follower that does its own blocking reads (Redis Cluster: see the module
    docstring)."""

    def __init__(self, redis: _ClusterRedis, what: str, key: str, after: str) -> None:
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


# -- URLs ---------------------------------------------------------------------------------------


def _parse(url: str) -> _Topology:
    """``url`` taken apart; ``ValueError`` (never quoting a password) when it is malformed."""
    parts = urlsplit(url)
    scheme = parts.scheme
    where = f"{scheme}:// URL"
    kind: Literal["plain", "cluster", "sentinel"] = (
        "plain" if scheme in _PLAIN else "cluster" if scheme in _CLUSTER else "sentinel"
    )
    userinfo, at, hosts = parts.netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = (unquote(secret) or None) if colon else None
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        query[key] = value
    accepted = {"plain": _PLAIN_PARAMS, "cluster": _CLUSTER_PARAMS}.get(kind, _SENTINEL_PARAMS)
    unknown = sorted(set(query) - accepted)
    if unknown:
        raise ValueError(
            f"a {where} takes no {', '.join(unknown)} parameter (it takes "
            f"{', '.join(sorted(accepted))})"
        )
    username = query.get("username") or username
    password = query.get("password") or password
    if "ssl_cert_reqs" in query and query["ssl_cert_reqs"] not in _CERT_REQS:
        raise ValueError(f"ssl_cert_reqs must be one of {', '.join(_CERT_REQS)}")
    if "ssl_check_hostname" in query and query["ssl_check_hostname"].lower() not in (
        _TRUE | _FALSE
    ):
        raise ValueError("ssl_check_hostname must be true or false")
    ssl_options = tuple(
        sorted(
            (k, v.lower() if k == "ssl_check_hostname" else v)
            for k, v in query.items()
            if k in _SSL_PARAMS
        )
    )
    tls = scheme in ("rediss", "rediss+cluster", "rediss+sentinel")
    if kind == "plain":
        if scheme == "unix":
            if not parts.path or parts.path == "/":
                raise ValueError(f"a {where} needs the socket's path: unix:///path/to.sock")
            db = _db(query.get("db", "0"), where)
            return _Topology(
                "plain", False, (), username, password, db=db, path=unquote(parts.path)
            )
        if not hosts:
            raise ValueError(f"a {where} needs the server's host: redis://host[:port][/db]")
        node = _host_port(hosts, 6379, where)
        db = _db(parts.path.strip("/") or query.get("db", "0"), where)
        return _Topology("plain", tls, (node,), username, password, db=db, ssl_options=ssl_options)
    nodes = tuple(
        _host_port(spec, 6379 if kind == "cluster" else 26379, where) for spec in hosts.split(",")
    )
    if kind == "cluster":
        if parts.path.strip("/") not in ("", "0"):
            raise ValueError(f"a {where} takes no database: a Redis Cluster has only database 0")
        return _Topology("cluster", tls, nodes, username, password, ssl_options=ssl_options)
    segments = [unquote(s) for s in parts.path.strip("/").split("/")] if parts.path else []
    if not segments or not segments[0] or len(segments) > 2:
        raise ValueError(f"a {where} needs the monitored primary's name: .../service[/db]")
    db_text = segments[1] if len(segments) == 2 else query.get("db", "0")
    return _Topology(
        "sentinel",
        tls,
        nodes,
        username,
        password,
        service=segments[0],
        db=_db(db_text, where),
        sentinel_username=query.get("sentinel_username") or None,
        sentinel_password=query.get("sentinel_password") or None,
        ssl_options=ssl_options,
    )


def _db(value: str, where: str) -> int:
    if not value.isdigit():
        raise ValueError(f"the database of a {where} must be a number >= 0, not {value!r}")
    return int(value)


def _host_port(spec: str, default: int, where: str) -> tuple[str, int]:
    """``host[:port]`` or ``[v6 address][:port]``."""
    if spec.startswith("["):
        host, bracket, rest = spec[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"a {where} has a malformed host {spec!r}")
        port_text = rest[1:]
    else:
        host, _, port_text = spec.partition(":")
    if not host:
        raise ValueError(f"a {where} needs host:port for each node, not {spec!r}")
    if not port_text:
        return host, default
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"a {where} has a malformed port in {spec!r}")
    return host, int(port_text)


def _password_of(url: str) -> str | None:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    return parts.password or query.get("password")


def _secrets_of(url: str) -> tuple[str, ...]:
    """Every password in ``url``, as written and percent-decoded."""
    parts = urlsplit(url)
    found: list[str] = []
    if parts.password:
        found += [parts.password, unquote(parts.password)]
    for key, value in parse_qsl(parts.query):
        if key in _SECRET_PARAMS and value:
            found += [value]
    return tuple(dict.fromkeys(found))


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user = parts.username or ""
        host = netloc.rpartition("@")[2]
        netloc = f"{user}:{REDACTED}@{host}"
    query = parts.query
    if query:
        pairs = [(k, REDACTED if k in _SECRET_PARAMS else v) for k, v in parse_qsl(query)]
        query = urlencode(pairs, safe="<>")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
