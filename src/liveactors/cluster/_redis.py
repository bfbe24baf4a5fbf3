"""Redis / Valkey as the cluster uses it: where the server is (one node, a Redis Cluster, or a
primary found through Sentinel), its URL with every password hidden, a client that lives as
long as the ``async with`` that opened it, and errors translated once.

Every failure to talk to the server becomes :class:`ClusterUnavailable` naming what was being
done and the server, with the passwords (and any secret the caller names) redacted; a
cancellation passes through untouched. Scripts are loaded once per client and called by SHA
(coredis reloads one the server forgot after a restart).

On a Redis Cluster every command and script goes to the node that serves its keys: a
conversation's keys share the hash tag ``{<name>}`` and the cluster-wide ones ``{cluster}``
(see ``_keys.py``), so each script's keys are in one slot. Channels are not keys: a message
published on any node, from a script too, reaches the subscribers of every node.
"""

from __future__ import annotations

import math
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import asynccontextmanager
from typing import Any, Final, Literal, TypeAlias, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import attrs
import coredis
from coredis.retry import NoRetryPolicy
import trio
from coredis.connection import TCPLocation

from .._errors import LiveError
from .._secrets import MIN_SECRET, REDACTED, longest_first, redact

__all__ = ["ClusterUnavailable", "Redis", "RedisClient", "RedisTarget"]

T = TypeVar("T")

#: What :meth:`RedisTarget.connect` gives: one server (or Sentinel's primary), or a cluster.
RedisClient: TypeAlias = coredis.Redis[str] | coredis.RedisCluster[str]

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
_SENTINEL_PARAMS: Final = _CLUSTER_PARAMS | {"db", "sentinel_username", "sentinel_password"}
#: No automatic retries: a script re-run after its reply was lost would append input twice
#: or run a claim twice. Callers decide what is safe to retry (a record write is idempotent,
#: a command's ``ClusterUnavailable`` means "maybe written").
_NO_RETRY: Final = NoRetryPolicy()
_CERT_REQS: Final = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})
#: At most this many connections to each node (coredis's default for one server).
_MAX_CONNECTIONS: Final = 64


class ClusterUnavailable(LiveError):
    """Redis or Valkey could not do what liveactors asked: it is down, unreachable, refused the
    credentials, or timed out. The message names the operation and the server; passwords and
    handles are never in it."""


@attrs.frozen
class _Topology:
    """A URL taken apart (the cluster and Sentinel forms; one server is coredis's to parse)."""

    kind: Literal["plain", "cluster", "sentinel"]
    tls: bool = False
    nodes: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    #: Sentinel: the monitored primary's name, its database, and the sentinels' own login.
    service: str = ""
    db: int = 0
    sentinel_username: str | None = None
    sentinel_password: str | None = attrs.field(default=None, repr=False)
    ssl_options: tuple[tuple[str, str], ...] = ()


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
    (with coredis's defaults for ``rediss://``: optional, no hostname check).
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

    @property
    def secret_url(self) -> str:
        """The URL as given, passwords included: for the client library only."""
        return self._url

    def connection_options(self) -> dict[str, Any]:
        """coredis's options for a connection to this server."""
        options: dict[str, Any] = {
            "connect_timeout": self.timeout,
            "stream_timeout": self.timeout,
        }
        tls = self._tls_context()
        if tls is not None:
            options["ssl_context"] = tls
        return options

    @asynccontextmanager
    async def connect(
        self, *, bounded_replies: bool = True, max_connections: int | None = None
    ) -> AsyncIterator[RedisClient]:
        """A coredis client, entered, for the ``async with`` (enter and leave it in one task);
        errors are coredis's own (see :meth:`open` for translated ones).

        ``bounded_replies``: each reply waits at most ``timeout`` (off for a client that
        blocks on reads). On a Redis Cluster, entering learns the layout from the nodes
        listed (so it fails when none answers); one server and Sentinel connect on first use.
        """
        stream_timeout = self.timeout if bounded_replies else None
        top = self._topology
        if top.kind == "plain":
            options = self.connection_options() | {
                "stream_timeout": stream_timeout,
                "pool_timeout": self.timeout,
            }
            if max_connections is not None:
                options["max_connections"] = max_connections
            plain: coredis.Redis[str] = coredis.Redis.from_url(
                self._url,
                decode_responses=True,
                decode_components=True,
                retry_policy=_NO_RETRY,
                **options,
            )
            async with plain:
                yield plain
        elif top.kind == "cluster":
            cluster: coredis.RedisCluster[str] = coredis.RedisCluster(
                startup_nodes=[TCPLocation(host, port) for host, port in top.nodes],
                username=top.username,
                password=top.password,
                connect_timeout=self.timeout,
                stream_timeout=stream_timeout,
                pool_timeout=self.timeout,
                ssl_context=self._tls_context(),
                max_connections=max_connections or _MAX_CONNECTIONS,
                max_connections_per_node=True,
                decode_responses=True,
                retry_policy=_NO_RETRY,
            )
            async with cluster:
                yield cluster
        else:
            tls = self._tls_context()
            sentinel_options: dict[str, Any] = {
                "connect_timeout": self.timeout,
                "stream_timeout": self.timeout,
                "username": top.sentinel_username,
                "password": top.sentinel_password,
            }
            if tls is not None:
                sentinel_options["ssl_context"] = tls
            sentinel: coredis.Sentinel[str] = coredis.Sentinel(
                [TCPLocation(host, port) for host, port in top.nodes],
                sentinel_kwargs=sentinel_options,
                decode_responses=True,
                retry_policy=_NO_RETRY,
            )
            primary_options: dict[str, Any] = {
                "username": top.username,
                "password": top.password,
                "db": top.db,
                "connect_timeout": self.timeout,
                "stream_timeout": stream_timeout,
                "timeout": self.timeout,  # for a connection from the pool
                "max_connections": max_connections or _MAX_CONNECTIONS,
            }
            if tls is not None:
                primary_options["ssl_context"] = tls
            async with sentinel:
                primary = sentinel.primary_for(top.service, **primary_options)
                async with primary:
                    yield primary

    @asynccontextmanager
    async def open(self, *, max_connections: int | None = None) -> AsyncIterator[Redis]:
        """A client for the life of the ``async with`` (enter and leave it in one task)."""
        # No stream timeout: blocking reads wait longer than a reply; ``Redis.call`` bounds
        # every other reply itself.
        raised: BaseException | None = None
        entered = False
        try:
            async with self.connect(
                bounded_replies=False, max_connections=max_connections
            ) as client:
                entered = True
                try:
                    yield Redis(self, client)
                except BaseException as exc:
                    raised = exc
                    raise
        except BaseException as exc:
            if raised is not None:
                # The block's own error (coredis's task group may have wrapped it): as is.
                if exc is not raised and _sole_leaf(exc) is raised:
                    raise raised from None
                raise
            if isinstance(exc, ClusterUnavailable) or not isinstance(exc, Exception):
                raise
            what = "talk to the server" if entered else "connect"
            raise self.unavailable(what, exc) from None

    def _tls_context(self) -> ssl.SSLContext | None:
        """The TLS context of a cluster or Sentinel URL: the one given (as ``redis://`` with an
        ``ssl_context`` uses TLS), else for ``rediss+...`` one built from the query; None
        without TLS."""
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


class Redis:
    """A connected client: ``call`` runs one operation with errors translated."""

    def __init__(self, target: RedisTarget, client: RedisClient) -> None:
        self.target = target
        self.client = client
        self._scripts: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<Redis {self.target.url}>"

    async def call(self, what: str, operation: Awaitable[T], *, secrets: Iterable[str] = ()) -> T:
        """Await ``operation``; a failure becomes :class:`ClusterUnavailable` naming ``what``.
        Each reply waits at most the target's ``timeout``."""
        try:
            with trio.fail_after(self.target.timeout):
                return await operation
        except trio.TooSlowError as exc:
            raise self.target.unavailable(what, TimeoutError("no reply in time"), secrets) from exc
        except ClusterUnavailable:
            raise
        except Exception as exc:
            raise self.target.unavailable(what, exc, secrets) from None

    async def script(
        self,
        what: str,
        source: str,
        keys: list[str],
        args: list[Any],
        *,
        secrets: Iterable[str] = (),
    ) -> Any:
        """Run a Lua script (loaded once, then called by its SHA; on a cluster, on the node
        that serves ``keys``, which must share one hash slot)."""
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self.client.register_script(source)
        return await self.call(what, script(keys, args), secrets=secrets)


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


# -- URLs ---------------------------------------------------------------------------------------


def _parse(url: str) -> _Topology:
    """``url`` taken apart; ``ValueError`` (never quoting a password) when it is malformed."""
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme in _PLAIN:
        # coredis parses the rest; the TLS options are ours, to verify by default.
        plain_ssl = tuple(
            sorted(
                (k, v.lower() if k == "ssl_check_hostname" else v)
                for k, v in parse_qsl(parts.query)
                if k in _SSL_PARAMS
            )
        )
        return _Topology("plain", scheme == "rediss", ssl_options=plain_ssl)
    kind: Literal["cluster", "sentinel"] = "cluster" if scheme in _CLUSTER else "sentinel"
    where = f"{scheme}:// URL"
    userinfo, at, hosts = parts.netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = (unquote(secret) or None) if colon else None
    nodes = tuple(
        _host_port(spec, 6379 if kind == "cluster" else 26379, where) for spec in hosts.split(",")
    )
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        query[key] = value
    accepted = _CLUSTER_PARAMS if kind == "cluster" else _SENTINEL_PARAMS
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
    tls = scheme.startswith("rediss+")
    if kind == "cluster":
        if parts.path.strip("/") not in ("", "0"):
            raise ValueError(f"a {where} takes no database: a Redis Cluster has only database 0")
        return _Topology("cluster", tls, nodes, username, password, ssl_options=ssl_options)
    segments = [unquote(s) for s in parts.path.strip("/").split("/")] if parts.path else []
    if not segments or not segments[0] or len(segments) > 2:
        raise ValueError(f"a {where} needs the monitored primary's name: .../service[/db]")
    db_text = segments[1] if len(segments) == 2 else query.get("db", "0")
    if not db_text.isdigit():
        raise ValueError(f"the database of a {where} must be a number >= 0, not {db_text!r}")
    return _Topology(
        "sentinel",
        tls,
        nodes,
        username,
        password,
        service=segments[0],
        db=int(db_text),
        sentinel_username=query.get("sentinel_username") or None,
        sentinel_password=query.get("sentinel_password") or None,
        ssl_options=ssl_options,
    )


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
