"""The path of a Redis connection's bytes: where a server listens (:class:`Endpoint`), a stream
to it (TCP keepalive, TLS), and the :class:`Transport` that reads and writes it.

Without TLS the bytes go straight to and from the socket (non-blocking calls, waiting with
trio's ``wait_readable`` / ``wait_writable`` only when it must): the fewest steps per command.
A quiet connection that died without a word (a host gone, a network cut) is noticed by TCP
keepalive (in about half a minute), on every connection.
"""

from __future__ import annotations

import socket
import ssl
from typing import Final

import attrs
import trio

from ._resp import ProtocolError

__all__ = ["BROKEN", "RECEIVE", "Endpoint", "Transport", "open_stream"]

#: Bytes asked for per read of the socket.
RECEIVE: Final = 65536
#: TCP keepalive: first probe after 15 s of quiet, then every 5 s; 3 unanswered: dead.
_KEEPALIVE: Final = (
    (getattr(socket, "TCP_KEEPIDLE", None), 15),
    (getattr(socket, "TCP_KEEPINTVL", None), 5),
    (getattr(socket, "TCP_KEEPCNT", None), 3),
)
#: The errors a connection's stream raises when it breaks.
BROKEN: Final = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, ProtocolError)


@attrs.frozen
class Endpoint:
    """Where a server listens: ``host`` and ``port``, or a Unix socket ``path``; with TLS when
    ``tls`` is a context (``server_hostname`` checked against the certificate: the host by
    default)."""

    host: str = ""
    port: int = 6379
    path: str | None = None
    tls: ssl.SSLContext | None = attrs.field(default=None, repr=False, eq=False)
    server_hostname: str | None = None

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


async def open_stream(endpoint: Endpoint) -> trio.abc.Stream:
    """A stream to ``endpoint`` (TLS handshake done); ``OSError`` when it cannot be reached.
    TCP keepalive probes a connection that stays quiet, so a dead one fails its reads."""
    stream: trio.SocketStream | trio.SSLStream[trio.SocketStream]
    if endpoint.path is not None:
        stream = await trio.open_unix_socket(endpoint.path)
    else:
        stream = await trio.open_tcp_stream(endpoint.host, endpoint.port)
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in _KEEPALIVE:
            if option is not None:
                stream.setsockopt(socket.IPPROTO_TCP, option, value)
    if endpoint.tls is None:
        return stream
    secure = trio.SSLStream(
        stream, endpoint.tls, server_hostname=endpoint.server_hostname or endpoint.host or None
    )
    try:
        await secure.do_handshake()
    except trio.BrokenResourceError as exc:
        await trio.aclose_forcefully(secure)
        raise ConnectionError(f"TLS handshake with {endpoint} failed: {exc.__cause__}") from exc
    except BaseException:
        await trio.aclose_forcefully(secure)
        raise
    return secure


class Transport:
    """A connection's bytes: straight on the socket when there is no TLS (the fewest steps
    per command), else through the trio stream."""

    __slots__ = ("_sock", "_stream")

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream: trio.abc.Stream | None = stream
        self._sock: socket.socket | None = None
        if isinstance(stream, trio.SocketStream):
            # The socket's descriptor, taken from trio's socket object (public API).
            trio_sock = stream.socket
            family, kind, proto = trio_sock.family, trio_sock.type, trio_sock.proto
            self._sock = socket.socket(family, kind, proto, fileno=trio_sock.detach())
            self._sock.setblocking(False)
            self._stream = None

    def send_now(self, data: bytes | memoryview) -> int:
        """Send what the socket takes at once, without waiting; how many bytes it took (0
        through TLS: :meth:`send_all` does it all there)."""
        if self._sock is None:
            return 0
        try:
            return self._sock.send(data)
        except BlockingIOError:
            return 0

    async def send_all(self, data: bytes | memoryview) -> None:
        if self._sock is None:
            assert self._stream is not None
            await self._stream.send_all(data)
            return
        view = memoryview(data)
        while view:
            try:
                sent = self._sock.send(view)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self._sock)
                continue
            view = view[sent:]

    async def receive(self) -> bytes | bytearray:
        """Some bytes (``b""`` at the end); without a checkpoint when some are there already."""
        if self._sock is None:
            assert self._stream is not None
            return await self._stream.receive_some(RECEIVE)
        while True:
            try:
                return self._sock.recv(RECEIVE)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self._sock)

    async def aclose(self) -> None:
        if self._sock is not None:
            trio.lowlevel.notify_closing(self._sock)
            self._sock.close()
        elif self._stream is not None:
            await trio.aclose_forcefully(self._stream)
