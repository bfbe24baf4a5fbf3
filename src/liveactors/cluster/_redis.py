"""One Redis / Valkey server as the cluster uses it: its URL (password hidden), a client that
lives as long as the ``async with`` that opened it, and errors translated once.

Every failure to talk to the server becomes :class:`ClusterUnavailable` naming what was being
done and the server, with the password (and any secret the caller names) redacted; a
cancellation passes through untouched. Scripts are loaded once per client and called by SHA
(coredis reloads one the server forgot after a restart).
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import coredis
import trio

from .._errors import LiveError
from .._secrets import MIN_SECRET, REDACTED, longest_first, redact

__all__ = ["ClusterUnavailable", "Redis", "RedisTarget"]

T = TypeVar("T")

_SCHEMES: Final = ("redis", "rediss", "unix")


class ClusterUnavailable(LiveError):
    """Redis or Valkey could not do what liveactors asked: it is down, unreachable, refused the
    credentials, or timed out. The message names the operation and the server; passwords and
    handles are never in it."""


class RedisTarget:
    """Where the server is and how to reach it; ``repr`` and errors never show the password."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "liveactors",
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        label: str = "Redis",
    ) -> None:
        scheme = urlsplit(url).scheme
        if scheme not in _SCHEMES:
            raise ValueError(
                f"the Redis URL must start with redis://, rediss:// or unix://, not {scheme!r}://"
            )
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix must be a non-empty string without braces: {prefix!r}")
        if isinstance(timeout, bool) or not (0 < timeout < math.inf):
            raise ValueError(f"timeout must be a finite number of seconds > 0: {timeout!r}")
        self._url = url
        self.password = _password_of(url)
        self.prefix = prefix
        self.timeout = float(timeout)
        self.ssl_context = ssl_context
        #: What errors call the server ("Redis", "handle store").
        self.label = label

    @property
    def url(self) -> str:
        """The URL with the password replaced by ``<redacted>``."""
        return _redact_url(self._url)

    def __repr__(self) -> str:
        return f"<RedisTarget {self.url} prefix={self.prefix!r}>"

    def unavailable(
        self, what: str, exc: BaseException, secrets: Iterable[str] = ()
    ) -> ClusterUnavailable:
        """``exc`` as the error users see: what failed, where, why; no secret in it."""
        leaf = _first_leaf(exc)
        hidden = longest_first(s for s in (self.password, *secrets) if s and len(s) >= MIN_SECRET)
        detail = redact(f"{type(leaf).__name__}: {leaf}", hidden)
        return ClusterUnavailable(f"{self.label} at {self.url}: could not {what}: {detail}")

    @property
    def secret_url(self) -> str:
        """The URL as given, password included: for the client library only."""
        return self._url

    def connection_options(self) -> dict[str, Any]:
        """coredis's options for a connection to this server."""
        options: dict[str, Any] = {
            "connect_timeout": self.timeout,
            "stream_timeout": self.timeout,
        }
        if self.ssl_context is not None:
            options["ssl_context"] = self.ssl_context
        return options

    @asynccontextmanager
    async def open(self, *, max_connections: int | None = None) -> AsyncIterator[Redis]:
        """A client for the life of the ``async with`` (enter and leave it in one task)."""
        # No stream timeout: blocking reads wait longer than a reply; ``Redis.call`` bounds
        # every other reply itself.
        options = self.connection_options() | {"stream_timeout": None}
        options["pool_timeout"] = self.timeout
        if max_connections is not None:
            options["max_connections"] = max_connections
        try:
            client: coredis.Redis[str] = coredis.Redis.from_url(
                self._url, decode_responses=True, **options
            )
        except Exception as exc:
            raise self.unavailable("connect", exc) from None
        raised: BaseException | None = None
        try:
            async with client:
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
            raise self.unavailable("talk to the server", exc) from None


def _sole_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class Redis:
    """A connected client: ``call`` runs one operation with errors translated."""

    def __init__(self, target: RedisTarget, client: coredis.Redis[str]) -> None:
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
        """Run a Lua script (loaded once, then called by its SHA)."""
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self.client.register_script(source)
        return await self.call(what, script(keys, args), secrets=secrets)


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _password_of(url: str) -> str | None:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    return parts.password or query.get("password")


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user = parts.username or ""
        host = netloc.rpartition("@")[2]
        netloc = f"{user}:{REDACTED}@{host}"
    query = parts.query
    if query:
        pairs = [(k, REDACTED if k == "password" else v) for k, v in parse_qsl(query)]
        query = urlencode(pairs, safe="<>")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
