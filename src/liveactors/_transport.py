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
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, suppress
from typing import NoReturn, Protocol
from urllib.parse import urlsplit

import attrs
import trio
import trio_websocket

from ._errors import CloseInfo, ConnectionLost, LiveError, SessionRejected
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
        # Verbatim, except that a peer echoing our credential never gets it into an error.
        text = _redact(text, _secrets_of(self._request))
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

#: trio-websocket reads 4 KiB at a time by default; one 100 ms chunk of 24 kHz audio is ~6.5 KiB
#: of JSON, so a larger read halves the reader's wake-ups on the hot path.
_RECEIVE_BUFFER = 64 * 1024
_REDACTED = "<redacted>"


def _secrets_of(request: ConnectRequest) -> tuple[str, ...]:
    """The credential strings in ``request``'s headers (a ``Token x`` value yields ``x`` too)."""
    found: list[str] = []
    for _, value in request.headers:
        found.append(value)
        scheme, _, rest = value.partition(" ")
        if rest and scheme.lower() in ("token", "bearer"):
            found.append(rest)
    # Longest first, so a bare token inside "Token <token>" is replaced as a whole.
    return tuple(sorted((s for s in found if len(s) >= 4), key=len, reverse=True))


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    return text


class _SecretFilter(logging.Filter):
    """Redacts the credentials of open connections from trio-websocket's own log records
    (it logs close reasons, which a peer may fill with anything)."""

    def __init__(self) -> None:
        super().__init__()
        self.active: Counter[str] = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.active:
            secrets = tuple(sorted(self.active, key=len, reverse=True))
            try:
                message = record.getMessage()
            except Exception:  # a malformed record is the handler's business, not ours
                return True
            redacted = _redact(message, secrets)
            if redacted is not message:
                record.msg, record.args = redacted, None
        return True

    @contextmanager
    def watching(self, secrets: tuple[str, ...]) -> Iterator[None]:
        self.active.update(secrets)
        try:
            yield
        finally:
            self.active.subtract(secrets)
            self.active += Counter()  # drop the zero counts


_SECRET_FILTER = _SecretFilter()
logging.getLogger("trio-websocket").addFilter(_SECRET_FILTER)


class _WatchedStream(trio.abc.Stream):
    """Forwards to ``stream`` and reports its end while the WebSocket handshake is pending.

    trio-websocket waits for the upgrade response forever if the peer hangs up first (or TLS
    fails) without answering; this lets :func:`_handshake` notice at once instead of at the
    connect timeout.
    """

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.on_end: Callable[[], object] | None = None
        self.error: BaseException | None = None
        self.ended = False

    def _end(self, error: BaseException | None) -> None:
        if self.on_end is not None and not self.ended:
            self.ended, self.error = True, error
            self.on_end()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._end(exc)
            raise

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        try:
            data = await self.stream.receive_some(max_bytes)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._end(exc)
            raise
        if not data:
            self._end(None)
        return data

    async def aclose(self) -> None:
        await self.stream.aclose()


class _ReaderStarter:
    """What trio-websocket gets as its "nursery": starts the reader task inside a shielded scope.

    The reader must outlive a cancellation of the code using the link, or the closing handshake
    that :meth:`Link.aclose` does on the way out could never read the peer's reply and would
    always wait for the whole close timeout. The scope is cancelled explicitly once the link
    is closed.
    """

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.scope = trio.CancelScope(shield=True)

    def start_soon(
        self, fn: Callable[[], Awaitable[object]], *args: object, name: object = None
    ) -> None:
        async def shielded() -> None:
            with self.scope:
                await fn(*args)

        self._nursery.start_soon(shielded, name=name or fn)


@asynccontextmanager
async def _open_link(request: ConnectRequest, open_stream: StreamOpener) -> AsyncIterator[Link]:
    """Open a stream, do the WebSocket handshake, yield a Link; close it on the way out.

    Errors come out as the :mod:`liveactors` exception they mean, never wrapped in an
    exception group: the reader task's nursery is an implementation detail.
    """
    secrets = _secrets_of(request)
    with _SECRET_FILTER.watching(secrets):
        try:
            async with trio.open_nursery() as nursery:
                readers = _ReaderStarter(nursery)
                try:
                    ws = await _handshake(readers, request, open_stream, secrets)
                    link = Link(ws, request)
                    log.debug("connected to %s", request.url)
                    try:
                        yield link
                    finally:
                        await link.aclose(*_code_for_exit(link))
                finally:
                    readers.scope.cancel()
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            _reraise(_collapse(group, request, secrets))


async def _handshake(
    nursery: _ReaderStarter,
    request: ConnectRequest,
    open_stream: StreamOpener,
    secrets: tuple[str, ...],
) -> trio_websocket.WebSocketConnection:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers]
    stream: trio.abc.Stream | None = None
    watched: _WatchedStream | None = None
    try:
        with trio.fail_after(request.connect_timeout):
            stream = await open_stream(request)
            watched = _WatchedStream(stream)
            with trio.CancelScope() as waiting:
                watched.on_end = waiting.cancel
                return await trio_websocket.wrap_client_stream(
                    nursery,  # type: ignore[arg-type]  # it only calls start_soon
                    watched,  # type: ignore[arg-type]  # any trio Stream works
                    request.host,
                    request.resource,
                    extra_headers=headers,
                    max_message_size=request.max_message_size,
                    receive_buffer_size=_RECEIVE_BUFFER,
                )
            # The peer hung up (or TLS failed) before answering the upgrade.
            raise _ended_early(watched.error, request, secrets)
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
    finally:
        if watched is not None:
            watched.on_end = None


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
    error = _translate_ws_error(exc, request, secrets)
    if error is not None:
        return error
    tls = _ssl_error_in(exc)
    if tls is not None:
        return _tls_failed(tls, request, secrets)
    if isinstance(exc, OSError | trio.BrokenResourceError):
        return ConnectionLost(f"cannot connect to {request.url}: {_os_error(exc, secrets)}")
    return None


def _translate_ws_error(
    exc: BaseException, request: ConnectRequest, secrets: tuple[str, ...]
) -> LiveError | None:
    """The :mod:`liveactors` error for a trio-websocket exception, else None."""
    if isinstance(exc, trio_websocket.ConnectionRejected):
        body = _redact((exc.body or b"").decode("utf-8", "replace"), secrets)
        return rejected_upgrade(exc.status_code, body)
    if isinstance(exc, trio_websocket.ConnectionClosed):
        code, reason = _close_of(exc)
        return classify_close(code, _redact(reason, secrets))
    if isinstance(exc, trio_websocket.HandshakeError):
        return ConnectionLost(
            f"WebSocket handshake with {request.url} failed: {_redact(str(exc), secrets)[:200]}"
        )
    return None


def _collapse(
    group: BaseExceptionGroup[BaseException], request: ConnectRequest, secrets: tuple[str, ...]
) -> BaseException:
    """The one exception a nursery's group stands for: the reader task's error (translated)
    or the caller's own; Cancelled only if there is nothing else."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        item = stack.pop()
        if isinstance(item, BaseExceptionGroup):
            stack.extend(reversed(item.exceptions))
        else:
            # Only the reader task's errors are ours to translate; the caller's pass as they are.
            leaves.append(_translate_ws_error(item, request, secrets) or item)
    real = [e for e in leaves if not isinstance(e, trio.Cancelled)]
    if len(real) == 1 or (real and all(isinstance(e, LiveError) for e in real)):
        return real[0]
    if not real and leaves:
        return leaves[0]
    return group


def _reraise(exc: BaseException) -> NoReturn:
    """Raise ``exc`` without making the group it came from its ``__context__``."""
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context
        del exc, context


def _close_of(exc: trio_websocket.ConnectionClosed) -> tuple[int, str]:
    reason = exc.reason
    if reason is None:
        return ABNORMAL, ""
    return reason.code, reason.reason or ""


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
