"""WebSocket transport: opens one connection, moves frames, turns closes into typed errors.

A :class:`Transport` opens a :class:`Link` (one WebSocket connection) as an async context
manager, so the link's reader task lives in a nursery owned by whoever opened it. Two transports
share one code path and differ only in how the byte stream is made:

* :class:`WebSocketTransport` dials TCP (TLS verified by default) — the real service or the fake
  server on loopback;
* :class:`MemoryTransport` asks a ``dial`` function for an in-memory stream — the fake server
  in the same trio run, so tests can use ``MockClock`` with autojump and never touch a socket.

Both speak real WebSocket framing through trio-websocket, so a test exercises the same bytes as
production. Lower-layer exceptions are translated here, once, into the :mod:`liveactors` tree.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Protocol
from urllib.parse import urlsplit

import attrs
import trio
import trio_websocket

from ._errors import CloseInfo, ConnectionLost, SessionRejected
from ._protocol.close import ABNORMAL, classify_close, rejected_upgrade

__all__ = [
    "ConnectRequest",
    "Link",
    "MemoryTransport",
    "Transport",
    "WebSocketTransport",
]

log = logging.getLogger("liveactors.transport")

#: Large ``clientContent`` echoes and grounding metadata exceed trio-websocket's 1 MiB default.
MAX_MESSAGE_SIZE = 16 * 2**20


@attrs.frozen
class ConnectRequest:
    """Everything needed to open one connection. ``headers`` carry secrets and never print."""

    url: str
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), repr=False)
    ssl_context: ssl.SSLContext | None = attrs.field(default=None, repr=False)
    connect_timeout: float = 10.0
    close_timeout: float = 2.0
    max_message_size: int = MAX_MESSAGE_SIZE

    @property
    def host(self) -> str:
        """Host (and port) for the HTTP ``Host`` header."""
        return urlsplit(self.url).netloc

    @property
    def resource(self) -> str:
        """Path and query of the upgrade request."""
        parts = urlsplit(self.url)
        return parts.path + (f"?{parts.query}" if parts.query else "")


class Link:
    """One open WebSocket connection: send text frames, receive frames, close with a code."""

    def __init__(self, ws: trio_websocket.WebSocketConnection, request: ConnectRequest) -> None:
        self._ws = ws
        self._request = request
        self.close_info: CloseInfo | None = None

    def __repr__(self) -> str:
        return f"<Link {self._request.url} {'closed' if self.close_info else 'open'}>"

    def _translate(self, exc: trio_websocket.ConnectionClosed) -> ConnectionLost | SessionRejected:
        reason = exc.reason
        code = reason.code if reason is not None else ABNORMAL
        text = (reason.reason or "") if reason is not None else ""
        if self.close_info is None:
            self.close_info = CloseInfo(code, text)
        return classify_close(self.close_info.code, self.close_info.reason)

    async def send(self, text: str) -> None:
        """Send one text frame; a closed connection raises its typed error."""
        try:
            await self._ws.send_message(text)
        except trio_websocket.ConnectionClosed as exc:
            raise self._translate(exc) from None
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.close_info = self.close_info or CloseInfo(ABNORMAL, "")
            raise ConnectionLost(f"connection broke while sending: {type(exc).__name__}") from None

    async def receive(self) -> str | bytes:
        """The next frame (text or binary); a close raises its typed error."""
        try:
            return await self._ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            raise self._translate(exc) from None

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code``, even from a cancelled scope, within the close timeout."""
        if self.close_info is None:
            self.close_info = CloseInfo(code, reason)
        with (
            trio.CancelScope(shield=True),
            trio.move_on_after(self._request.close_timeout),
            suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError),
        ):
            await self._ws.aclose(code, reason or None)


class Transport(Protocol):
    """How a connection is opened: ``async with transport.connect(request) as link: ...``."""

    def connect(self, request: ConnectRequest) -> AbstractAsyncContextManager[Link]: ...


StreamOpener = Callable[[ConnectRequest], Awaitable[trio.abc.Stream]]


@asynccontextmanager
async def _open_link(request: ConnectRequest, open_stream: StreamOpener) -> AsyncIterator[Link]:
    """Open a stream, do the WebSocket handshake, yield a Link; close it on the way out."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers]
    async with trio.open_nursery() as nursery:
        try:
            with trio.fail_after(request.connect_timeout):
                stream = await open_stream(request)
                try:
                    ws = await trio_websocket.wrap_client_stream(
                        nursery,
                        stream,  # type: ignore[arg-type]  # any trio Stream works
                        request.host,
                        request.resource,
                        extra_headers=headers,
                        max_message_size=request.max_message_size,
                    )
                except BaseException:
                    await trio.aclose_forcefully(stream)
                    raise
        except trio.TooSlowError:
            raise ConnectionLost(
                f"connect to {request.url} timed out after {request.connect_timeout:g}s"
            ) from None
        except trio_websocket.ConnectionRejected as exc:
            body = (exc.body or b"").decode("utf-8", "replace")
            raise rejected_upgrade(exc.status_code, body) from None
        except trio_websocket.ConnectionClosed as exc:
            raise classify_close(*_close_of(exc)) from None
        except trio_websocket.HandshakeError as exc:
            raise ConnectionLost(f"WebSocket handshake with {request.url} failed: {exc}") from None
        except ssl.SSLError as exc:
            raise SessionRejected(f"TLS failed for {request.url}: {exc.reason or exc}") from None
        except (OSError, trio.BrokenResourceError) as exc:
            raise ConnectionLost(f"cannot connect to {request.url}: {_os_error(exc)}") from None
        link = Link(ws, request)
        log.debug("connected to %s", request.url)
        try:
            yield link
        finally:
            await link.aclose(*_code_for_exit(link))
            nursery.cancel_scope.cancel()


def _close_of(exc: trio_websocket.ConnectionClosed) -> tuple[int, str]:
    reason = exc.reason
    if reason is None:
        return ABNORMAL, ""
    return reason.code, reason.reason or ""


def _code_for_exit(link: Link) -> tuple[int, str]:
    if link.close_info is not None:
        return link.close_info.code, link.close_info.reason
    return 1000, ""


def _os_error(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


@attrs.frozen
class WebSocketTransport:
    """The production transport: TCP, TLS verified by default (``ssl_context`` to customise)."""

    def connect(self, request: ConnectRequest) -> AbstractAsyncContextManager[Link]:
        """Open a connection to ``request.url``."""
        return _open_link(request, _open_tcp)


async def _open_tcp(request: ConnectRequest) -> trio.abc.Stream:
    parts = urlsplit(request.url)
    secure = parts.scheme == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    if not secure:
        return await trio.open_tcp_stream(host, port)
    context = request.ssl_context or ssl.create_default_context()
    return await trio.open_ssl_over_tcp_stream(
        host, port, ssl_context=context, https_compatible=True
    )


@attrs.frozen
class MemoryTransport:
    """The in-memory twin: ``dial(request)`` returns the client end of an in-memory stream whose
    other end a server (usually :func:`liveactors.testing.open_fake_server`) handles."""

    dial: StreamOpener

    def connect(self, request: ConnectRequest) -> AbstractAsyncContextManager[Link]:
        """Open a connection through ``dial``."""
        return _open_link(request, self.dial)
