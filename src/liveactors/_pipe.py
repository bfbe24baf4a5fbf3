"""A connection's byte stream, lean: a non-blocking socket, with TLS done in memory.

trio's ``SocketStream`` and ``SSLStream`` are general: every send and receive goes through
conflict detectors, locks and a checkpoint at each layer (three or four passes through trio's
scheduler per frame sent), every read that finds its buffer empty raises and catches an
exception (``BlockingIOError`` from the socket, ``SSLWantReadError`` from OpenSSL), and a
``receive_some`` of TLS returns one 16 KiB record at a time. At 50 microphone chunks a second
per conversation that overhead is most of the client's CPU, and the exceptions (tracked objects,
tracebacks) feed the garbage collector.

A :class:`Pipe` owns one connected socket (set non-blocking) and, for ``wss://``, an
``ssl.SSLObject`` over two memory BIOs — the same OpenSSL, the same certificate checks as
``SSLStream`` (``context.wrap_bio(..., server_hostname=host)``), the same ``https_compatible``
treatment of an EOF without ``close_notify``. The link calls its synchronous halves and waits
only when the socket says so:

* :meth:`Pipe.write` encrypts (TLS) and sends what the socket takes at once; :meth:`Pipe.flush`
  waits for the rest (``wait_writable``). A frame the socket takes whole costs no pass through
  the scheduler.
* :meth:`Pipe.read` returns what can be had without waiting: decrypted records already complete
  in the incoming BIO (the TLS record headers are followed, so OpenSSL is asked only for whole
  records and does not raise), else one ``recv``; None when the socket is dry, and the caller
  waits with :meth:`Pipe.wait_readable`. After a short ``recv`` the socket is taken to be dry
  without asking it again (no ``BlockingIOError`` either).

A :class:`Pipe` is also a ``trio.abc.Stream`` (``send_all``, ``receive_some``, ``aclose``), so
the WebSocket upgrade and anything else that wants a stream can use it as one.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from typing import Final

import trio

__all__ = ["Pipe", "open_pipe"]

#: Bytes asked of the socket per ``recv``.
RECV_SIZE: Final = 64 * 1024
#: TLS record header: type (1), version (2), length (2).
_HEADER: Final = 5


class Pipe(trio.abc.Stream):
    """One connected socket, with TLS if ``tls`` is given (see the module docstring)."""

    __slots__ = (
        "_closed",
        "_complete",
        "_dry",
        "_eof",
        "_fed",
        "_head",
        "_incoming",
        "_left",
        "_out",
        "_outgoing",
        "_rest",
        "_sock",
        "_tls",
        "context",
    )

    def __init__(
        self, sock: socket.socket, context: ssl.SSLContext | None = None, host: str | None = None
    ) -> None:
        sock.setblocking(False)
        self._sock = sock
        #: The context of the TLS connection (None for plain TCP).
        self.context = context
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls: ssl.SSLObject | None = None
        if context is not None:
            self._tls = context.wrap_bio(
                self._incoming, self._outgoing, server_side=False, server_hostname=host
            )
        #: What ``receive_some`` could not return (over its ``max_bytes``).
        self._rest = b""
        #: Bytes written but not yet taken by the socket.
        self._out: memoryview | None = None
        #: The last recv came back short: the socket is probably empty.
        self._dry = False
        self._eof = False
        self._closed = False
        # TLS record framing of the incoming byte stream: bytes fed to the BIO in all, the
        # part of them that belongs to complete records, bytes still missing from the current
        # record, and a partial header.
        self._fed = 0
        self._complete = 0
        self._left = 0
        self._head = b""

    async def handshake(self) -> None:
        """The TLS handshake (the certificate and host name checked as the context says)."""
        tls = self._tls
        assert tls is not None
        while True:
            try:
                tls.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            if self._outgoing.pending:
                self._send(memoryview(self._outgoing.read()))
                await self.flush()
            if done:
                return
            raw = self._recv()
            while raw is None:
                await self.wait_readable()
                raw = self._recv()
            if not raw:
                raise trio.BrokenResourceError("the peer closed the connection during TLS setup")
            self._feed(raw)

    # -- writing ---------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> bool:
        """Queue ``data`` (encrypted first for TLS) and send what the socket takes now;
        True when all of it (and anything queued before) went out."""
        if self._closed:
            raise trio.ClosedResourceError("the connection was closed")
        tls = self._tls
        if tls is not None:
            tls.write(data)
            data = self._outgoing.read()
        if self._out is not None:
            data = bytes(self._out) + bytes(data)
            self._out = None
        return self._send(memoryview(data))

    def _send(self, view: memoryview) -> bool:
        try:
            sent = self._sock.send(view)
        except BlockingIOError:
            sent = 0
        if sent < len(view):
            self._out = view[sent:]
            return False
        return True

    @property
    def pending(self) -> bool:
        """Written bytes the socket has not taken yet."""
        return self._out is not None

    async def flush(self) -> None:
        """Wait until every byte written went out (cancelling this may cut a frame)."""
        while self._out is not None:
            await trio.lowlevel.wait_writable(self._sock)
            out, self._out = self._out, None
            self._send(out)

    # -- reading ---------------------------------------------------------------------------

    def read(self) -> bytes | None:
        """Bytes available now (``b""``: the peer closed), or None if the socket is dry."""
        if self._rest:
            rest, self._rest = self._rest, b""
            return rest
        if self._tls is None:
            if self._eof:
                return b""
            return None if self._dry else self._recv()
        while True:
            data = self._decrypt()
            if data is not None:
                return data
            if self._eof:
                return b""
            if self._dry:
                return None
            raw = self._recv()
            if raw is None:
                return None
            if raw:
                self._feed(raw)
            else:
                self._incoming.write_eof()

    def _recv(self) -> bytes | None:
        try:
            data = self._sock.recv(RECV_SIZE)
        except BlockingIOError:
            self._dry = True
            return None
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self._eof = True
        elif len(data) < RECV_SIZE:
            self._dry = True
        return data

    def _feed(self, raw: bytes) -> None:
        """Into the incoming BIO, noting where complete TLS records end."""
        self._incoming.write(raw)
        self._fed += len(raw)
        at, size, left = 0, len(raw), self._left
        while True:
            if left:
                if left > size - at:
                    self._left = left - (size - at)
                    return
                at += left
                left = 0
                self._complete = self._fed - (size - at)
            head = self._head + raw[at : at + _HEADER - len(self._head)]
            if len(head) < _HEADER:
                self._head, self._left = head, 0
                return
            at += _HEADER - len(self._head)
            self._head = b""
            left = (head[3] << 8) | head[4]

    def _decrypt(self) -> bytes | None:
        """What complete records decrypt to now (None: nothing)."""
        tls = self._tls
        assert tls is not None
        chunks: list[bytes] = []
        while True:
            # Bytes of complete records still in the BIO: OpenSSL reads one record per call
            # and raises only when a record is incomplete, so ask it only when one is whole.
            whole = self._complete - (self._fed - self._incoming.pending)
            if whole <= 0 and not tls.pending() and not self._incoming.eof:
                break
            try:
                chunk = tls.read(RECV_SIZE)
            except ssl.SSLWantReadError:
                break  # a record that was not application data (a session ticket)
            except ssl.SSLZeroReturnError:
                self._eof = True
                break
            except ssl.SSLEOFError:
                # An EOF without close_notify (https_compatible, as trio is told).
                self._eof = True
                break
            if not chunk:
                self._eof = True
                break
            chunks.append(chunk)
        self._flush_outgoing()
        if not chunks:
            return None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _flush_outgoing(self) -> None:
        """Anything OpenSSL wants to send while reading (an alert, a key update) goes out with
        the next write (or now, if the socket takes it)."""
        if self._outgoing.pending:
            data = self._outgoing.read()
            if self._out is not None:
                self._out = memoryview(bytes(self._out) + data)
            else:
                self._send(memoryview(data))

    async def wait_readable(self) -> None:
        """Until the socket has bytes (or an EOF) to read."""
        await trio.lowlevel.wait_readable(self._sock)
        self._dry = False

    # -- trio.abc.Stream -------------------------------------------------------------------

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            if self.write(data):
                await trio.lowlevel.cancel_shielded_checkpoint()
                return
            await self.flush()
        except OSError as exc:
            raise trio.BrokenResourceError(f"send failed: {exc!r}") from exc

    async def wait_send_all_might_not_block(self) -> None:
        if self._out is None:
            await trio.lowlevel.checkpoint()
        else:
            await trio.lowlevel.wait_writable(self._sock)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            data = self.read()
            while data is None:
                await self.wait_readable()
                data = self.read()
        except OSError as exc:
            raise trio.BrokenResourceError(f"receive failed: {exc!r}") from exc
        await trio.lowlevel.cancel_shielded_checkpoint()
        if max_bytes is not None and len(data) > max_bytes:
            self._rest = data[max_bytes:]
            data = data[:max_bytes]
        return data

    def close(self) -> None:
        """Close the socket now (no TLS close_notify)."""
        if not self._closed:
            self._closed = True
            trio.lowlevel.notify_closing(self._sock)
            self._sock.close()

    async def aclose(self) -> None:
        """Send TLS ``close_notify`` if the socket takes it at once, then close."""
        if not self._closed and self._tls is not None and self._out is None:
            with contextlib.suppress(ssl.SSLError, OSError, ValueError):
                self._tls.unwrap()
            if self._outgoing.pending:
                with contextlib.suppress(OSError):
                    self._sock.send(self._outgoing.read())
        self.close()
        await trio.lowlevel.checkpoint()


async def open_pipe(
    stream: trio.SocketStream, context: ssl.SSLContext | None, server_hostname: str | None
) -> Pipe:
    """Take over ``stream``'s socket (connected, TCP_NODELAY set by trio); with ``context``,
    do the TLS handshake (certificate and host name checked as the context says). TLS errors
    come out as ``ssl.SSLError``; a peer that hangs up during the handshake as
    ``trio.BrokenResourceError``."""
    sock = socket.socket(fileno=stream.socket.detach())
    pipe = Pipe(sock, context, server_hostname)
    try:
        if context is not None:
            await pipe.handshake()
    except BaseException:
        pipe.close()
        raise
    return pipe
