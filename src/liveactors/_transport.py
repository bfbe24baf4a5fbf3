"""WebSocket transport: opens one connection, moves frames, turns closes into typed errors.

A :class:`Transport` opens a :class:`Link` (one WebSocket connection) as an async context
manager. The link starts no task: whoever calls :meth:`Link.receive` reads the socket and runs
the framing, so a frame reaches the conversation without a hop through a reader task and a
channel. Two transports share one code path and differ only in how the byte stream is made:

* :class:`WebSocketTransport` dials TCP (TLS verified by default) — the real service or the fake
  server on loopback;
* :class:`MemoryTransport` asks a ``dial`` function for an in-memory stream — the fake server
  in the same trio run, so tests can use ``MockClock`` with autojump and never touch a socket.

Both speak real WebSocket framing through wsproto (sans-IO), so a test exercises the same
bytes as production. Lower-layer exceptions are translated here, once, into the
:mod:`liveactors` tree, and secrets never reach them: a close reason (or a refused upgrade's
body) that quotes a credential or one of the conversation's resumption handles
(:class:`Secrets`) shows ``<redacted>`` instead. A send cancelled after it began to write breaks
its link, so the peer never reads half a frame followed by another.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, suppress
from typing import Protocol
from urllib.parse import urlsplit

import attrs
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from ._errors import CloseInfo, ConnectionLost, LiveError, ProtocolError, SessionRejected
from ._protocol.close import ABNORMAL, classify_close, rejected_upgrade
from ._wsframes import BINARY, CLOSE, PING, TEXT, FrameError, FrameReader

__all__ = [
    "ConnectRequest",
    "Link",
    "MemoryTransport",
    "Secrets",
    "Transport",
    "WebSocketTransport",
]

log = logging.getLogger("liveactors.transport")

#: Large ``clientContent`` echoes and grounding metadata exceed trio-websocket's 1 MiB default.
MAX_MESSAGE_SIZE = 16 * 2**20


#: A string shorter than this is never treated as a secret: redacting it would mangle text.
_MIN_SECRET = 4


class Secrets:
    """Strings that must never show in an exception's text or a log record: a conversation's
    resumption handles (a close reason may quote the handle it refuses).

    Shared and growing: a conversation keeps one, adds each handle as it arrives, and passes it
    on every :class:`ConnectRequest` (``secrets=``). A link reads it when a close arrives, so a
    handle learnt in the middle of a connection is hidden as well as the one it resumed with.
    Only the newest ``keep`` are kept: a conversation gets a handle per turn, and a service
    echoes the handle in use, not one from hours ago. (Credentials in a request's headers are
    redacted without being listed here.)
    """

    __slots__ = ("_items", "_keep")

    def __init__(self, initial: Iterable[str | None] = (), *, keep: int = 16) -> None:
        self._keep = keep
        self._items: dict[str, None] = {}  # insertion-ordered set, oldest first
        for secret in initial:
            self.add(secret)

    def __repr__(self) -> str:
        return f"<Secrets: {len(self._items)} hidden>"

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def add(self, secret: str | None) -> None:
        """Hide ``secret`` from now on (None, or a string too short to be one, is ignored)."""
        if not secret or len(secret) < _MIN_SECRET:
            return
        self._items.pop(secret, None)
        self._items[secret] = None
        while len(self._items) > self._keep:
            del self._items[next(iter(self._items))]

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``<redacted>``."""
        return _redact(text, _longest_first(self._items))


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
    scheduler per message). wsproto frames what we send (client frames are masked). Control
    frames are handled inside :meth:`receive`: a ping is answered with a pong, a peer's close
    with the closing handshake. One task receives at a time; any task may send.
    """

    def __init__(self, stream: trio.abc.Stream, ws: WSConnection, request: ConnectRequest) -> None:
        assert ws.connection is not None
        self._stream = stream
        self._ws = ws.connection  # frames what we send, past the handshake
        self._request = request
        self._frames = FrameReader(request.max_message_size)
        # Frames that came with the upgrade response, already parsed by wsproto. (A Live server
        # speaks only after our setup, which is not sent yet, so this is empty in practice.)
        self._early: list[str | bytes] = [
            bytes(e.data) if isinstance(e.data, bytearray) else e.data
            for e in self._ws.events()
            if isinstance(e, BytesMessage | TextMessage) and e.message_finished
        ]
        self._send_lock = trio.Lock()
        #: A cancelled write may have cut a frame: nothing more may be written.
        self._broken = False
        #: A write failed (the peer is gone): no more sends, but reading goes on to the end.
        self._send_failed = False
        self._receiving = False
        self._buffered = 0  # messages returned since the last socket read
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
            self.close_info = CloseInfo(code, _redact(reason, _secrets_of(self._request)))
        return self._closed_error()

    async def _write(self, data: bytes) -> None:
        """Write ``data`` (one whole frame) to the stream, or break the link trying.

        The peer reads frames by their length, so after a frame cut short anything written
        next would be taken for the rest of its payload. A cancellation that comes before the
        first byte leaves the link intact; one that comes later may have cut the frame, and a
        stream cannot say how much went out: the link is then broken (the trio rule for a
        cancelled ``send_all``, as ``SSLStream`` applies it too). Nothing is written on it
        again, not even a close frame: the peer sees the connection drop, and the supervisor
        replaces it. (Finishing the frame under a shield instead would cost a cancel scope on
        every send, the hot path of audio streaming, for a case that only arises when the
        connection is being given up anyway.)
        """
        async with self._send_lock:
            if self._broken:
                await trio.lowlevel.checkpoint()
                raise ConnectionLost("connection broken: a cancelled send cut a frame short")
            if self._send_failed:
                await trio.lowlevel.checkpoint()
                raise ConnectionLost("connection broke while sending")
            # Acquiring the lock may have left a cancellation pending: take it now, while
            # nothing is written.
            await trio.lowlevel.checkpoint_if_cancelled()
            try:
                await self._stream.send_all(data)
            except trio.Cancelled:
                self._break()
                raise
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                # Sending is over, but what the peer sent before the connection broke may still
                # be waiting to be read (an answer, its turnComplete): the reader drains it
                # and meets the close or EOF itself. Marking the link closed here would throw
                # those frames away and ask their question again.
                self._send_failed = True
                raise ConnectionLost(
                    f"connection broke while sending: {type(exc).__name__}"
                ) from None

    def _break(self) -> None:
        """A write was cut: write nothing more, and report the link as ended abnormally."""
        self._broken = True
        if self.close_info is None:
            self.close_info = CloseInfo(ABNORMAL, "")
        log.debug(
            "a send was cancelled mid-frame; the connection to %s is broken", self._request.url
        )

    async def _reply(self, event: Event) -> None:
        """A pong or the closing handshake's reply: never half-written by a cancellation."""
        with (
            trio.CancelScope(shield=True),
            trio.move_on_after(self._request.close_timeout),
            suppress(LiveError, LocalProtocolError),
        ):
            await self._write(self._ws.send(event))

    async def send(self, text: str) -> None:
        """Send one text frame; a closed connection raises its typed error.

        Cancelling a send that has begun to write breaks the link (see :meth:`_write`): the
        peer never sees half a frame followed by another.
        """
        if self.close_info is not None:
            await trio.lowlevel.checkpoint()
            raise self._closed_error()
        try:
            data = self._ws.send(Message(data=text))
        except LocalProtocolError:  # we began closing
            await trio.lowlevel.checkpoint()
            raise self._close_with(ABNORMAL, "") from None
        await self._write(data)

    async def ping(self) -> None:
        """Send a ping; its pong (or anything else) counts in :attr:`reads`."""
        if self.close_info is not None:
            await trio.lowlevel.checkpoint()
            raise self._closed_error()
        try:
            data = self._ws.send(Ping(payload=b"liveactors"))
        except LocalProtocolError:
            await trio.lowlevel.checkpoint()
            raise self._close_with(ABNORMAL, "") from None
        await self._write(data)

    async def receive(self) -> str | bytes:
        """The next frame (text or binary); a close raises its typed error."""
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this link")
        self._receiving = True
        try:
            return await self._receive()
        finally:
            self._receiving = False

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
                    await self._reply(Pong(payload=_as_bytes(payload)))
                elif opcode == CLOSE:
                    code, reason = _close_payload(payload)
                    # Recorded before replying: a reply cut short breaks the link, and the
                    # error must still say what the peer said.
                    error = self._close_with(code, reason)
                    if self._ws.state is ConnectionState.OPEN:
                        await self._reply(CloseConnection(code if code != _NO_STATUS else 1000))
                    raise error
                continue  # a pong: nothing to do
            try:
                data = await self._stream.receive_some(_RECEIVE_BUFFER)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                data = b""
            if not data:
                raise self._close_with(ABNORMAL, "")
            self._buffered = 0
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
            suppress(LocalProtocolError, LiveError),
        ):
            if self._ws.state is ConnectionState.OPEN and not self._broken:
                await self._write(self._ws.send(CloseConnection(code, reason or None)))
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
                data = await self._stream.receive_some(_RECEIVE_BUFFER)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return
            if not data:
                return
            frames.feed(data)


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
_RECEIVE_BUFFER = 64 * 1024
#: A receive that finds its message already buffered checkpoints once in this many.
_CHECKPOINT_EVERY = 16
_REDACTED = "<redacted>"


def _secrets_of(request: ConnectRequest) -> tuple[str, ...]:
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
    return _longest_first(s for s in found if len(s) >= _MIN_SECRET)


def _longest_first(secrets: Iterable[str]) -> tuple[str, ...]:
    # Longest first, so a bare token inside "Token <token>" (or a handle that is the prefix of
    # a newer one) is replaced as a whole.
    return tuple(sorted(set(secrets), key=len, reverse=True))


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    return text


class _SecretFilter(logging.Filter):
    """Redacts the secrets of open connections from trio-websocket's log records (a server in
    the same process, such as the fake one, logs close reasons, which may echo anything)."""

    def __init__(self) -> None:
        super().__init__()
        self.active: Counter[str] = Counter()
        #: The growing registries of open connections (read at each record: they change).
        self.registries: Counter[Secrets] = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.active or self.registries:
            found = set(self.active)
            for registry in self.registries:
                found.update(registry)
            try:
                message = record.getMessage()
            except Exception:  # a malformed record is the handler's business, not ours
                return True
            redacted = _redact(message, _longest_first(found))
            if redacted is not message:
                record.msg, record.args = redacted, None
        return True

    @contextmanager
    def watching(self, request: ConnectRequest) -> Iterator[None]:
        """Hide ``request``'s secrets while its connection is open."""
        credentials = _secrets_of(attrs.evolve(request, secrets=None))
        registry = request.secrets
        self.active.update(credentials)
        if registry is not None:
            self.registries[registry] += 1
        try:
            yield
        finally:
            self.active.subtract(credentials)
            self.active += Counter()  # drop the zero counts
            if registry is not None:
                self.registries[registry] -= 1
                self.registries += Counter()


_SECRET_FILTER = _SecretFilter()
logging.getLogger("trio-websocket").addFilter(_SECRET_FILTER)


@asynccontextmanager
async def _open_link(request: ConnectRequest, open_stream: StreamOpener) -> AsyncIterator[Link]:
    """Open a stream, do the WebSocket handshake, yield a Link; close it on the way out.

    No task is started, so errors come out as they are: the caller's own, or the
    :mod:`liveactors` exception a failure to connect means.
    """
    secrets = _secrets_of(request)
    with _SECRET_FILTER.watching(request):
        stream, ws = await _handshake(request, open_stream, secrets)
        link = Link(stream, ws, request)
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
                    data = await stream.receive_some(_RECEIVE_BUFFER)
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
                                text = _redact(bytes(body).decode("utf-8", "replace"), secrets)
                                raise rejected_upgrade(status, text)
                except RemoteProtocolError as exc:
                    raise ConnectionLost(
                        f"WebSocket handshake with {request.url} failed: "
                        f"{_redact(str(exc), secrets)[:200]}"
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
    return SessionRejected(f"TLS failed for {request.url}: {_redact(str(detail), secrets)}")


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
        return _redact(exc.strerror, secrets)
    text = str(exc)
    if text:
        return _redact(text, secrets)[:200]
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
    context = request.ssl_context or _default_ssl_context()
    return await trio.open_ssl_over_tcp_stream(
        host, port, ssl_context=context, https_compatible=True
    )


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
