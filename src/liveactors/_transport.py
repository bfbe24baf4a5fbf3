"""WebSocket transport: opens one connection, moves frames, turns closes into typed errors.

A :class:`Transport` opens a :class:`Link` (one WebSocket connection) as an async context
manager. The link starts no task: whoever calls :meth:`Link.receive` reads the socket and runs
the framing, so a frame reaches the conversation without a hop through a reader task and a
channel. Two transports share one code path and differ only in how the byte stream is made:

* :class:`WebSocketTransport` dials TCP (TLS verified by default) — the real service or the fake
  server on loopback;
* :class:`MemoryTransport` asks a ``dial`` function for an in-memory stream — the fake server
  in the same trio run, so tests can use ``MockClock`` with autojump and never touch a socket.

Both speak real WebSocket framing (wsproto for the upgrade, then the lean frame reader and
writer of :mod:`liveactors._wsframes`), so a test exercises the same bytes as production. A TCP
connection is a :class:`~liveactors._pipe.Pipe` (a non-blocking socket with TLS in memory), on
which a frame usually goes out, and a read comes back, without a pass through trio's
scheduler. Lower-layer exceptions are translated here, once, into the
:mod:`liveactors` tree, and secrets never reach them: a close reason (or a refused upgrade's
body) that quotes a credential or one of the conversation's resumption handles
(:class:`Secrets`) shows ``<redacted>`` instead. A send cancelled after it began to write breaks
its link, so the peer never reads half a frame followed by another.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, suppress
from typing import Protocol
from urllib.parse import urlsplit

import attrs
import trio
from wsproto import WSConnection
from wsproto.events import BytesMessage, TextMessage

from ._errors import CloseInfo, ConnectionLost, LiveError, ProtocolError, SessionRejected
from ._pipe import Pipe
from ._protocol.close import ABNORMAL, classify_close
from ._secrets import MIN_SECRET, Secrets, longest_first, redact
from ._wsframes import BINARY, CLOSE, PING, PONG, TEXT, FrameError, FrameReader, FrameWriter

__all__ = [
    "RECEIVE_BUFFER",
    "ConnectRequest",
    "Link",
    "Secrets",
    "StreamOpener",
    "Transport",
    "secrets_of",
]

log = logging.getLogger("liveactors.transport")

#: Large ``clientContent`` echoes and grounding metadata exceed trio-websocket's 1 MiB default.
MAX_MESSAGE_SIZE = 16 * 2**20


@attrs.frozen
class ConnectRequest:
    """Everything needed to open one connection. ``headers`` carry credentials and never print;
    ``secrets`` holds more strings (resumption handles) that errors and logs must not show.
    ``close_timeout`` bounds the writes that a cancellation must not cut (a pong, the closing
    handshake)."""

    url: str
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), repr=False)
    ssl_context: ssl.SSLContext | None = attrs.field(default=None, repr=False)
    connect_timeout: float = 10.0
    close_timeout: float = 2.0
    max_message_size: int = MAX_MESSAGE_SIZE
    secrets: Secrets | None = attrs.field(default=None, repr=False, eq=False)

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
    """One open WebSocket connection: send text frames, receive frames, close with a code.

    Pull-based: the task that calls :meth:`receive` reads the socket and parses the frames
    itself (:class:`~liveactors._wsframes.FrameReader`), so a frame reaches the conversation's
    reader with no reader task and no channel in between (each costs a pass through trio's
    scheduler per message). Frames sent are written by :class:`~liveactors._wsframes.
    FrameWriter` (client frames are masked). On a :class:`~liveactors._pipe.Pipe` (every TCP
    connection) a frame the socket takes at once is sent without waiting, and reads wait only
    when the socket is dry. Control frames are handled inside :meth:`receive`: a ping is
    answered with a pong, a peer's close with the closing handshake. One task receives at a
    time; any task may send.
    """

    __slots__ = (
        "_broken",
        "_buffered",
        "_close_sent",
        "_early",
        "_frames",
        "_pipe",
        "_receiving",
        "_request",
        "_send_failed",
        "_stream",
        "_waiting",
        "_writer",
        "_writes",
        "_writing",
        "close_info",
        "last_received",
        "reads",
    )

    def __init__(self, stream: trio.abc.Stream, ws: WSConnection, request: ConnectRequest) -> None:
        assert ws.connection is not None
        self._stream = stream
        self._pipe = stream if isinstance(stream, Pipe) else None
        self._request = request
        self._frames = FrameReader(request.max_message_size)
        self._writer = FrameWriter()
        # Frames that came with the upgrade response, already parsed by wsproto. (A Live server
        # speaks only after our setup, which is not sent yet, so this is empty in practice.)
        # wsproto is done with once the upgrade is through.
        self._early: list[str | bytes] = [
            bytes(e.data) if isinstance(e.data, bytearray) else e.data
            for e in ws.connection.events()
            if isinstance(e, BytesMessage | TextMessage) and e.message_finished
        ]
        #: A write is under way (waiting for the socket): others wait their turn.
        self._writing = False
        self._waiting: trio.lowlevel.ParkingLot | None = None
        self._writes = 0
        #: A cancelled write may have cut a frame: nothing more may be written.
        self._broken = False
        #: A write failed (the peer is gone): no more sends, but reading goes on to the end.
        self._send_failed = False
        #: Our close frame went out (or was attempted): no data frame may follow it.
        self._close_sent = False
        self._receiving = False
        self._buffered = 0  # messages returned since the receiving task last waited
        self.close_info: CloseInfo | None = None
        #: trio time of the last bytes from the peer, and how many reads brought bytes
        #: (keepalive reads both).
        self.last_received = trio.current_time()
        self.reads = 0

    def __repr__(self) -> str:
        return f"<Link {self._request.url} {'closed' if self.close_info else 'open'}>"

    def _closed_error(self) -> ConnectionLost | SessionRejected:
        assert self.close_info is not None
        return classify_close(self.close_info.code, self.close_info.reason)

    def _close_with(self, code: int, reason: str) -> ConnectionLost | SessionRejected:
        if self.close_info is None:
            # Verbatim, except that a peer echoing our credential never gets it into an error.
            self.close_info = CloseInfo(code, redact(reason, secrets_of(self._request)))
        return self._closed_error()

    async def _write(self, data: bytes) -> None:
        """Write ``data`` (one or more whole frames) to the stream, or break the link trying.

        The peer reads frames by their length, so after a frame cut short anything written
        next would be taken for the rest of its payload. A cancellation that comes before the
        first byte leaves the link intact; one that comes later may have cut the frame, and a
        stream cannot say how much went out: the link is then broken (the trio rule for a
        cancelled ``send_all``, as ``SSLStream`` applies it too). Nothing is written on it
        again, not even a close frame: the peer sees the connection drop, and the supervisor
        replaces it. (Finishing the frame under a shield instead would cost a cancel scope on
        every send, the hot path of audio streaming, for a case that only arises when the
        connection is being given up anyway.) On a :class:`Pipe`, a frame the socket takes
        whole is written without a pass through the scheduler (one in ``_CHECKPOINT_EVERY``
        yields, so a busy sender still lets others run); cancellation is honoured before it.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            if self._broken:
                await trio.lowlevel.checkpoint()
                raise ConnectionLost("connection broken: a cancelled send cut a frame short")
            if self._send_failed:
                await trio.lowlevel.checkpoint()
                raise ConnectionLost("connection broke while sending")
            if not self._writing:
                break
            if self._waiting is None:
                self._waiting = trio.lowlevel.ParkingLot()
            await self._waiting.park()  # nothing written yet: a cancellation here is harmless
        self._writing = True
        pipe = self._pipe
        if pipe is None:
            # Any other stream: one shielded pass through the scheduler first (what taking a
            # lock costs), so that a cancellation arriving meanwhile is taken before a byte is
            # written, not in the stream's own checkpoint after its bytes went out.
            try:
                await trio.lowlevel.cancel_shielded_checkpoint()
                await trio.lowlevel.checkpoint_if_cancelled()
            except BaseException:
                self._writing = False
                if self._waiting:
                    self._waiting.unpark()
                raise
        try:
            if pipe is None:
                await self._stream.send_all(data)
            elif pipe.write(data):
                self._writes += 1
                if self._writes >= _CHECKPOINT_EVERY:
                    self._writes = 0
                    await trio.lowlevel.cancel_shielded_checkpoint()
            else:
                await pipe.flush()
        except trio.Cancelled:
            self._break()
            raise
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            # Sending is over, but what the peer sent before the connection broke may still
            # be waiting to be read (an answer, its turnComplete): the reader drains it
            # and meets the close or EOF itself. Marking the link closed here would throw
            # those frames away and ask their question again.
            self._send_failed = True
            raise ConnectionLost(f"connection broke while sending: {type(exc).__name__}") from None
        finally:
            self._writing = False
            if self._waiting:
                self._waiting.unpark()

    def _break(self) -> None:
        """A write was cut: write nothing more, and report the link as ended abnormally."""
        self._broken = True
        if self.close_info is None:
            self.close_info = CloseInfo(ABNORMAL, "")
        log.debug(
            "a send was cancelled mid-frame; the connection to %s is broken", self._request.url
        )

    async def _reply(self, frame: bytes) -> None:
        """A pong or the closing handshake's reply: never half-written by a cancellation."""
        with (
            trio.CancelScope(shield=True),
            trio.move_on_after(self._request.close_timeout),
            suppress(LiveError),
        ):
            await self._write(frame)

    async def send(self, text: str) -> None:
        """Send one text frame; a closed connection raises its typed error.

        Cancelling a send that has begun to write breaks the link (see :meth:`_write`): the
        peer never sees half a frame followed by another.
        """
        await self._check_writable()
        await self._write(self._writer.text(text))

    async def _check_writable(self) -> None:
        """Raise the link's typed error (after a checkpoint) if nothing may be sent on it."""
        if self.close_info is not None:
            await trio.lowlevel.checkpoint()
            raise self._closed_error()
        if self._close_sent:  # we began closing
            await trio.lowlevel.checkpoint()
            raise self._close_with(ABNORMAL, "")

    async def send_many(self, texts: list[str]) -> None:
        """Send several text frames in one write (one TLS record, one system call), in
        order; the same rules as :meth:`send`."""
        await self._check_writable()
        text = self._writer.text
        await self._write(b"".join([text(t) for t in texts]))

    async def ping(self) -> None:
        """Send a ping; its pong (or anything else) counts in :attr:`reads`."""
        await self._check_writable()
        await self._write(self._writer.frame(PING, b"liveactors"))

    async def receive(self) -> str | bytes:
        """The next frame (text or binary); a close raises its typed error."""
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this link")
        self._receiving = True
        try:
            return await self._receive()
        finally:
            self._receiving = False

    async def _read_some(self) -> bytes:
        """The next bytes from the peer (``b""``: it closed), waiting only if there are none."""
        pipe = self._pipe
        if pipe is None:
            received = await self._stream.receive_some(RECEIVE_BUFFER)
            self._buffered = 0
            return bytes(received)
        data = pipe.read()
        while data is None:
            await pipe.wait_readable()
            self._buffered = 0
            data = pipe.read()
        return data

    async def _receive(self) -> str | bytes:
        frames = self._frames
        while True:
            if self.close_info is not None:
                await trio.lowlevel.checkpoint()
                raise self._closed_error()
            if self._early:
                await trio.lowlevel.checkpoint()
                return self._early.pop(0)
            try:
                frame = frames.next()
            except FrameError as exc:
                # Answer with the code RFC 6455 gives (sent on the way out). A message too big
                # for max_message_size is a lost connection, as with any 1009; broken framing
                # is the server's protocol error.
                self.close_info = CloseInfo(exc.code, exc.reason)
                await trio.lowlevel.checkpoint()
                if exc.code == _TOO_BIG:
                    raise self._closed_error() from None
                raise ProtocolError(f"bad WebSocket frame from the server: {exc.reason}") from None
            if frame is not None:
                opcode, payload = frame
                if opcode in (TEXT, BINARY):
                    # A burst read in one go reaches the reader in one scheduler pass: a buffered
                    # message yields to other tasks only now and then, but cancellation is
                    # honoured at every call.
                    self._buffered += 1
                    if self._buffered >= _CHECKPOINT_EVERY:
                        self._buffered = 0
                        await trio.lowlevel.checkpoint()
                    else:
                        await trio.lowlevel.checkpoint_if_cancelled()
                    return payload
                if opcode == PING:
                    await self._reply(self._writer.frame(PONG, _as_bytes(payload)))
                elif opcode == CLOSE:
                    code, reason = _close_payload(payload)
                    # Recorded before replying: a reply cut short breaks the link, and the
                    # error must still say what the peer said.
                    error = self._close_with(code, reason)
                    if not self._close_sent:
                        self._close_sent = True
                        await self._reply(self._writer.close(_sendable(code)))
                    raise error
                continue  # a pong: nothing to do
            try:
                data = await self._read_some()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                data = b""
            if not data:
                raise self._close_with(ABNORMAL, "")
            self.last_received = trio.current_time()
            self.reads += 1
            frames.feed(data)

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code``, even from a cancelled scope, within the close timeout."""
        if self.close_info is None:
            self.close_info = CloseInfo(code, reason)
        code, reason = self.close_info.code, self.close_info.reason
        with (
            trio.CancelScope(shield=True),
            trio.move_on_after(self._request.close_timeout),
            suppress(LiveError),
        ):
            if not self._close_sent and not self._broken:
                self._close_sent = True
                await self._write(self._writer.close(_sendable(code), reason))
                if not self._receiving:
                    await self._await_close_reply()
        await trio.aclose_forcefully(self._stream)

    async def _await_close_reply(self) -> None:
        """Read (and drop) whatever comes until the peer's close frame or EOF."""
        frames = self._frames
        while True:
            try:
                frame = frames.next()
            except FrameError:
                return
            if frame is not None:
                if frame[0] == CLOSE:
                    return
                continue
            try:
                data = await self._read_some()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return
            if not data:
                return
            frames.feed(data)


def _sendable(code: int) -> int:
    """A close code we may put in a close frame: the local-only ones (no status, abnormal
    closure, TLS failure) go out as 1000, as wsproto sends them."""
    return 1000 if code in (_NO_STATUS, ABNORMAL, 1015) else code


#: RFC 6455: a close frame without a status code; a message too big to process.
_NO_STATUS = 1005
_TOO_BIG = 1009


def _as_bytes(payload: str | bytes) -> bytes:
    """A control frame's payload (the reader returns those as bytes)."""
    return payload.encode() if isinstance(payload, str) else payload


def _close_payload(payload: str | bytes) -> tuple[int, str]:
    """The code and reason of a close frame's payload."""
    data = _as_bytes(payload)
    if len(data) < 2:
        return _NO_STATUS, ""
    return int.from_bytes(data[:2], "big"), data[2:].decode("utf-8", "replace")


class Transport(Protocol):
    """How a connection is opened: ``async with transport.connect(request) as link: ...``."""

    def connect(self, request: ConnectRequest) -> AbstractAsyncContextManager[Link]: ...


StreamOpener = Callable[[ConnectRequest], Awaitable[trio.abc.Stream]]

#: Bytes read per socket read: a burst of frames (one 100 ms chunk of 24 kHz audio is ~6.5 KiB
#: of JSON) is taken in one go.
RECEIVE_BUFFER = 64 * 1024
#: A receive that finds its message already buffered checkpoints once in this many.
_CHECKPOINT_EVERY = 16


def secrets_of(request: ConnectRequest) -> tuple[str, ...]:
    """The strings to hide for ``request``, now: the credentials in its headers (a ``Token x``
    value yields ``x`` too) and what its :class:`Secrets` holds at this moment."""
    found: list[str] = []
    for _, value in request.headers:
        found.append(value)
        scheme, _, rest = value.partition(" ")
        if rest and scheme.lower() in ("token", "bearer"):
            found.append(rest)
    if request.secrets is not None:
        found.extend(request.secrets)
    return longest_first(s for s in found if len(s) >= MIN_SECRET)
