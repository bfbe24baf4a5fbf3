"""Opening a WebSocket connection: the handshake, and the two transports that make its byte
stream (TCP with TLS, or an in-memory stream from the fake server).

Lower-layer failures to connect are translated here, once, into the :mod:`liveactors` tree,
with secrets redacted (:mod:`liveactors._secrets`).
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from urllib.parse import urlsplit

import attrs
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    RejectConnection,
    RejectData,
    Request,
)
from wsproto.utilities import RemoteProtocolError

from ._errors import ConnectionLost, LiveError, SessionRejected
from ._pipe import open_pipe
from ._protocol.close import rejected_upgrade
from ._secrets import SECRET_FILTER, redact
from ._transport import RECEIVE_BUFFER, ConnectRequest, Link, StreamOpener, secrets_of

__all__ = ["MemoryTransport", "WebSocketTransport"]

log = logging.getLogger("liveactors.transport")


@asynccontextmanager
async def _open_link(request: ConnectRequest, open_stream: StreamOpener) -> AsyncIterator[Link]:
    """Open a stream, do the WebSocket handshake, yield a Link; close it on the way out.

    No task is started, so errors come out as they are: the caller's own, or the
    :mod:`liveactors` exception a failure to connect means.
    """
    secrets = secrets_of(request)
    credentials = secrets_of(attrs.evolve(request, secrets=None))
    with SECRET_FILTER.watching(credentials, request.secrets):
        stream, ws = await _handshake(request, open_stream, secrets)
        link = Link(stream, ws, request)
        # wsproto (and the h11 connection of its upgrade) is done with: this frame stays
        # suspended for the connection's whole life, and must not keep them.
        del ws
        log.debug("connected to %s", request.url)
        try:
            yield link
        finally:
            await link.aclose(*_code_for_exit(link))


async def _handshake(
    request: ConnectRequest, open_stream: StreamOpener, secrets: tuple[str, ...]
) -> tuple[trio.abc.Stream, WSConnection]:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers]
    stream: trio.abc.Stream | None = None
    try:
        with trio.fail_after(request.connect_timeout):
            stream = await open_stream(request)
            ws = WSConnection(ConnectionType.CLIENT)
            upgrade = Request(host=request.host, target=request.resource, extra_headers=headers)
            await stream.send_all(ws.send(upgrade))
            status, body = 0, bytearray()
            while True:
                try:
                    data = await stream.receive_some(RECEIVE_BUFFER)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    raise _ended_early(exc, request, secrets) from None
                if not data:
                    # The peer hung up (or TLS failed) before answering the upgrade.
                    raise _ended_early(None, request, secrets)
                try:
                    ws.receive_data(data)  # type: ignore[arg-type]  # any bytes-like
                    for event in ws.handshake.events():
                        if type(event) is AcceptConnection:
                            return stream, ws
                        if type(event) is RejectConnection:
                            status = event.status_code
                            if not event.has_body:
                                raise rejected_upgrade(status, "")
                        elif type(event) is RejectData:
                            body += event.data
                            if event.body_finished:
                                text = redact(bytes(body).decode("utf-8", "replace"), secrets)
                                raise rejected_upgrade(status, text)
                except RemoteProtocolError as exc:
                    raise ConnectionLost(
                        f"WebSocket handshake with {request.url} failed: "
                        f"{redact(str(exc), secrets)[:200]}"
                    ) from None
    except BaseException as exc:
        if stream is not None:
            await trio.aclose_forcefully(stream)
        if isinstance(exc, trio.TooSlowError):
            raise ConnectionLost(
                f"connect to {request.url} timed out after {request.connect_timeout:g}s"
            ) from None
        error = _translate_setup_error(exc, request, secrets)
        if error is None:
            raise
        raise error from None


def _ended_early(
    error: BaseException | None, request: ConnectRequest, secrets: tuple[str, ...]
) -> LiveError:
    tls = _ssl_error_in(error)
    if tls is not None:
        return _tls_failed(tls, request, secrets)
    return ConnectionLost(
        f"{request.url} closed the connection before the WebSocket upgrade completed"
    )


def _ssl_error_in(error: BaseException | None) -> ssl.SSLError | None:
    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, ssl.SSLError):
            return error
        error = error.__cause__ or error.__context__
        seen += 1
    return None


def _tls_failed(
    exc: ssl.SSLError, request: ConnectRequest, secrets: tuple[str, ...]
) -> SessionRejected:
    detail = getattr(exc, "verify_message", None) or exc.reason or type(exc).__name__
    return SessionRejected(f"TLS failed for {request.url}: {redact(str(detail), secrets)}")


def _translate_setup_error(
    exc: BaseException, request: ConnectRequest, secrets: tuple[str, ...]
) -> LiveError | None:
    """The :mod:`liveactors` error for a failure while connecting, or None to let it pass."""
    if isinstance(exc, LiveError):
        return exc
    if not isinstance(exc, Exception):
        return None  # Cancelled, KeyboardInterrupt...: never turned into an error
    tls = _ssl_error_in(exc)
    if tls is not None:
        return _tls_failed(tls, request, secrets)
    if isinstance(exc, OSError | trio.BrokenResourceError):
        return ConnectionLost(f"cannot connect to {request.url}: {_os_error(exc, secrets)}")
    return None


def _code_for_exit(link: Link) -> tuple[int, str]:
    if link.close_info is not None:
        return link.close_info.code, link.close_info.reason
    return 1000, ""


def _os_error(exc: BaseException, secrets: tuple[str, ...]) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return redact(exc.strerror, secrets)
    text = str(exc)
    if text:
        return redact(text, secrets)[:200]
    return type(exc).__name__


@attrs.frozen
class WebSocketTransport:
    """The production transport: TCP, TLS verified by default (``ssl_context`` to customise)."""

    def connect(self, request: ConnectRequest) -> AbstractAsyncContextManager[Link]:
        """Open a connection to ``request.url``."""
        return _open_link(request, _open_tcp)


async def _open_tcp(request: ConnectRequest) -> trio.abc.Stream:
    """A :class:`~liveactors._pipe.Pipe` over a TCP connection (trio's happy eyeballs and
    TCP_NODELAY), TLS set up when the URL is ``wss://``: OpenSSL through ``ssl.SSLObject``,
    the host name and certificate checked, an EOF without ``close_notify`` taken as an EOF
    (``https_compatible``)."""
    parts = urlsplit(request.url)
    secure = parts.scheme == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    stream = await trio.open_tcp_stream(host, port)
    if not secure:
        return await open_pipe(stream, None, None)
    context = request.ssl_context or _default_ssl_context()
    return await open_pipe(stream, context, host)


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    """The process's one default (verifying) client context; the CA store (and
    ``SSL_CERT_FILE``) is read when the first TLS connection is made, not again."""
    # One for every connection: each context loads the system's CA store (measured: 17 ms of
    # CPU and 840 KiB that a live connection keeps), which per connection would cost 8 GiB
    # at 10,000 conversations and stall the loop on every reconnect.
    return ssl.create_default_context()


@attrs.frozen
class MemoryTransport:
    """The in-memory twin: ``dial(request)`` returns the client end of an in-memory stream whose
    other end a server (usually :func:`liveactors.testing.open_fake_server`) handles."""

    dial: StreamOpener

    def connect(self, request: ConnectRequest) -> AbstractAsyncContextManager[Link]:
        """Open a connection through ``dial``."""
        return _open_link(request, self.dial)
