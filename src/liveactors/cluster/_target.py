"""Where the Redis or Valkey server is and how to reach it: :class:`RedisTarget`, made from a
URL (one server, a Redis Cluster, or a primary found through Sentinel), shown with every
password hidden, and the client it opens for an ``async with``.

It builds what connecting needs (the TLS context, the login, where to connect: the sentinels
are asked again for each new connection) and turns every failure into the one error users
see, :class:`~._redis.ClusterUnavailable`, with no secret in it.
"""

from __future__ import annotations

import math
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Final, Literal
from urllib.parse import urlsplit

import trio

from .._secrets import MIN_SECRET, longest_first, redact
from ._cluster_redis import open_cluster_redis
from ._handshake import Login, ask_sentinels
from ._lean_redis import LeanRedis
from ._redis import ClusterUnavailable, Redis
from ._socket import Endpoint
from ._url import CERT_REQS, FORMS, SCHEMES, TRUE, parse, password_of, redact_url, secrets_of

__all__ = ["RedisTarget"]

#: What the connections call themselves (``CLIENT SETNAME``; ``CLIENT LIST`` shows it).
_NAME: Final = "liveactors"


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
        if scheme not in SCHEMES:
            raise ValueError(
                f"the Redis URL must take one of these forms, not {scheme!r}://: "
                + "; ".join(FORMS)
            )
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix must be a non-empty string without braces: {prefix!r}")
        if isinstance(timeout, bool) or not (0 < timeout < math.inf):
            raise ValueError(f"timeout must be a finite number of seconds > 0: {timeout!r}")
        self._url = url
        self._topology = parse(url)
        #: The data nodes' password as written in the URL (None without one).
        self.password = password_of(url)
        #: Every password in the URL, as written and decoded: redacted from errors.
        self.secrets = secrets_of(url)
        self.prefix = prefix
        self.timeout = float(timeout)
        self.ssl_context = ssl_context
        #: What errors call the server ("Redis", "handle store").
        self.label = label

    @property
    def url(self) -> str:
        """The URL with every password replaced by ``<redacted>``."""
        return redact_url(self._url)

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
        """The implementation for the topology: coredis on a Redis Cluster, else the lean
        client (see ``_redis.py``)."""
        async with trio.open_nursery() as nursery:
            if self._topology.kind == "cluster":
                async with open_cluster_redis(self, nursery) as redis:
                    try:
                        yield redis
                    finally:
                        nursery.cancel_scope.cancel()
            else:
                lean = LeanRedis(self, nursery)
                try:
                    yield lean
                finally:
                    lean.close()
                    nursery.cancel_scope.cancel()

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
        verify = CERT_REQS[options.get("ssl_cert_reqs", "required")]
        context.check_hostname = (
            verify != ssl.CERT_NONE and options.get("ssl_check_hostname", "true") in TRUE
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
