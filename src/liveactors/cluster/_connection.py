"""Connections to one Redis or Valkey server on trio: a pipelined one for commands, and one that
listens to channels.

:class:`RespConnection` sends each command as soon as it is called and resolves the callers
in the order their replies come back, so any number of tasks share one connection without
waiting for each other's round trips. Theory of operation:

* **Writing.** A caller appends its bytes to the connection's outbox and its waiter to the
  FIFO of callers waiting for a reply, in the same step (so the FIFO's order is the order on
  the wire). If no other caller is writing, it becomes the writer: it lets the scheduler run
  the other tasks that are ready once (their commands join the outbox), then sends the whole
  outbox with one system call, straight to the socket. Whatever the socket does not take at
  once is written by :meth:`RespConnection._write`, shielded from the caller's cancellation
  (a half-written command would leave the connection unusable) and bounded by the timeout;
  commands added meanwhile go with it.
* **Reading.** One reader task per connection, in the nursery the connection was given,
  parses replies (``_resp.RespReader``) and resolves the FIFO's head with each. A caller
  waits parked on trio's lowest-level primitive; one cancelled while it waits leaves its
  waiter in the FIFO: its reply is read and dropped, and the replies after it still find
  their callers.
* **Failures.** A connection that breaks (closed, reset, unparseable) fails every caller
  waiting on it with :class:`ConnectionError` (their commands may or may not have run) and is
  dropped; the next call connects again, lazily, bounded by the timeout. So does one whose
  oldest reply is late (a watchdog task looks about once a second; every reply behind a late
  one waits behind it too): each call has a deadline, the connection's timeout unless it says
  otherwise (a blocking read gives its block plus the timeout). Callers that arrive while a
  connection is being made wait for that attempt and share its outcome. Nothing is retried:
  whether running a command again is safe is the caller's call. The one exception is
  :meth:`RespConnection.evalsha`: a ``NOSCRIPT`` reply means the script did not run, so it
  is loaded and called once more.
* **Connecting.** ``locate`` says where the server is (a fixed address, or the primary that
  the sentinels name now); then, in one write, ``AUTH``, ``SELECT`` (a database other than
  0), ``CLIENT SETNAME`` and ``CLIENT ID`` (and ``ROLE`` when the server must be a primary:
  a sentinel's answer may be stale), each reply checked. TLS runs over ``trio.SSLStream``
  with the context given (certificates and host names verified unless it says otherwise).
  A ``READONLY`` reply (the server was demoted) drops the connection once it is delivered,
  so the next call asks ``locate`` again.

:class:`RespSubscriber` listens to some channels on a connection of its own, read by the task
that iterates it. After a failure it connects and subscribes again (with a growing delay),
telling its owner (``on_subscribed``: messages published meanwhile are lost) and reporting
each failure (``on_error``). A quiet connection that died without a word (a host gone, a
network cut) is noticed by TCP keepalive (in about half a minute), on every connection.

Without TLS the bytes go straight to and from the socket (non-blocking calls, waiting with
trio's ``wait_readable`` / ``wait_writable`` only when it must). On a 2-core development
machine a command costs about 20 µs of CPU alone, 6 µs when several are in flight (coredis:
150-185 µs).
"""

from __future__ import annotations

import math
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import attrs
import trio

from ._resp import (
    INCOMPLETE,
    Arg,
    NoScriptError,
    ProtocolError,
    ReadOnlyError,
    RespError,
    RespReader,
    pack,
    pack_many,
    script_sha,
)

__all__ = [
    "Endpoint",
    "Login",
    "RespConnection",
    "RespSubscriber",
    "ask_sentinels",
    "open_connection",
    "open_stream",
]

#: Bytes asked for per read of the socket.
_RECEIVE: Final = 65536
#: TCP keepalive: first probe after 15 s of quiet, then every 5 s; 3 unanswered: dead.
_KEEPALIVE: Final = (
    (getattr(socket, "TCP_KEEPIDLE", None), 15),
    (getattr(socket, "TCP_KEEPINTVL", None), 5),
    (getattr(socket, "TCP_KEEPCNT", None), 3),
)
#: The errors a connection's stream raises when it breaks.
_BROKEN: Final = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, ProtocolError)


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


@attrs.frozen
class Login:
    """What a connection says before its first command: the user and password (``AUTH``),
    the database (``SELECT``) and its name (``CLIENT SETNAME``)."""

    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    db: int = 0
    name: str | None = None


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


async def _exchange(
    stream: trio.abc.Stream, reader: RespReader, commands: Sequence[Sequence[Arg]]
) -> list[Any]:
    """Send ``commands`` in one write and read their replies (errors in place)."""
    await stream.send_all(pack_many(commands))
    replies: list[Any] = []
    while len(replies) < len(commands):
        reply = reader.get()
        if reply is INCOMPLETE:
            data = await stream.receive_some(_RECEIVE)
            if not data:
                raise ConnectionError("the server closed the connection")
            reader.feed(data)
        else:
            replies.append(reply)
    return replies


async def handshake(
    stream: trio.abc.Stream, reader: RespReader, login: Login, *, primary: bool = False
) -> int:
    """Log in on a fresh connection; returns its client id. ``primary``: refuse a server that
    is not a primary (``ConnectionError``)."""
    commands: list[list[Arg]] = []
    if login.password is not None:
        auth: list[Arg] = ["AUTH", login.password]
        if login.username:
            auth.insert(1, login.username)
        commands.append(auth)
    if login.db:
        commands.append(["SELECT", login.db])
    if login.name:
        commands.append(["CLIENT", "SETNAME", login.name])
    commands.append(["CLIENT", "ID"])
    if primary:
        commands.append(["ROLE"])
    replies = await _exchange(stream, reader, commands)
    for reply in replies:
        if isinstance(reply, RespError):
            raise reply
    if primary:
        role = replies[-1][0].decode() if replies[-1] else "?"
        if role != "master":
            raise ConnectionError(f"the server is not the primary (its role: {role})")
        replies.pop()
    return int(replies[-1])


async def ask_sentinels(
    sentinels: Sequence[Endpoint], service: str, login: Login, *, each: float
) -> tuple[str, int]:
    """Where the primary ``service`` is now, as the first sentinel that knows says
    (``SENTINEL GET-MASTER-ADDR-BY-NAME``), giving each at most ``each`` seconds;
    ``ConnectionError`` naming each one's failure when none does."""
    failures: list[str] = []
    for sentinel in sentinels:
        replies: list[Any] | None = None
        with trio.move_on_after(each):
            try:
                replies = await _ask_sentinel(sentinel, service, login)
            except _BROKEN as exc:
                failures.append(f"{sentinel}: {type(exc).__name__}: {exc}")
                continue
        if replies is None:
            failures.append(f"{sentinel}: no answer in time")
            continue
        error = next((r for r in replies if isinstance(r, RespError)), None)
        if error is not None:
            failures.append(f"{sentinel}: {type(error).__name__}: {error}")
        elif not replies[-1]:
            failures.append(f"{sentinel}: it knows no primary named {service!r}")
        else:
            host, port = replies[-1]
            return host.decode(), int(port)
    raise ConnectionError(f"no sentinel gave the primary {service!r}: " + "; ".join(failures))


async def _ask_sentinel(sentinel: Endpoint, service: str, login: Login) -> list[Any]:
    stream = await open_stream(sentinel)
    try:
        commands: list[list[Arg]] = []
        if login.password is not None:
            auth: list[Arg] = ["AUTH", login.password]
            if login.username:
                auth.insert(1, login.username)
            commands.append(auth)
        commands.append(["SENTINEL", "GET-MASTER-ADDR-BY-NAME", service])
        return await _exchange(stream, RespReader(), commands)
    finally:
        await trio.aclose_forcefully(stream)


class _Transport:
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
            return await self._stream.receive_some(_RECEIVE)
        while True:
            try:
                return self._sock.recv(_RECEIVE)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self._sock)

    async def aclose(self) -> None:
        if self._sock is not None:
            trio.lowlevel.notify_closing(self._sock)
            self._sock.close()
        elif self._stream is not None:
            await trio.aclose_forcefully(self._stream)


class _Waiter:
    """A caller waiting for ``count`` replies (its task, once it parks)."""

    __slots__ = ("count", "deadline", "done", "error", "replies", "task")

    def __init__(self, count: int, deadline: float) -> None:
        self.count = count
        self.deadline = deadline
        self.replies: list[Any] = []
        self.error: BaseException | None = None
        self.done = False
        self.task: trio.lowlevel.Task | None = None

    def finish(self) -> None:
        self.done = True
        task, self.task = self.task, None
        if task is not None:
            trio.lowlevel.reschedule(task)

    async def wait(self) -> None:
        """Until :meth:`finish` (a cancelled caller leaves; its replies are dropped)."""
        if self.done:
            return
        self.task = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            self.task = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)


class _Link:
    """One physical connection: its transport, its parser, its FIFO of waiting callers."""

    __slots__ = (
        "client_id",
        "endpoint",
        "error",
        "outbox",
        "pending",
        "reader",
        "scope",
        "transport",
        "watch",
        "writing",
    )

    def __init__(
        self, transport: _Transport, reader: RespReader, client_id: int, endpoint: Endpoint
    ) -> None:
        self.transport = transport
        self.reader = reader
        self.client_id = client_id
        self.endpoint = endpoint
        self.pending: deque[_Waiter] = deque()
        self.outbox: list[bytes | memoryview] = []
        self.writing = False
        self.error: BaseException | None = None
        #: The reader task's and the watchdog's.
        self.scope = trio.CancelScope()
        self.watch = trio.CancelScope()

    def fail(self, error: BaseException) -> None:
        """Broken: every waiting caller gets ``error``; the reader task ends and closes it."""
        if self.error is not None:
            return
        self.error = error
        self.outbox.clear()
        pending, self.pending = self.pending, deque()
        for waiter in pending:
            waiter.error = error
            waiter.finish()
        self.scope.cancel()
        self.watch.cancel()


class _Attempt:
    """A connection being made, which callers that arrive meanwhile wait for."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: BaseException | None = None


class RespConnection:
    """A pipelined connection for commands (see the module docstring), made on first use and
    again after a failure. Its reader tasks run in ``nursery``; :meth:`close` ends them."""

    def __init__(
        self,
        nursery: trio.Nursery,
        locate: Callable[[], Awaitable[Endpoint]],
        login: Login,
        *,
        timeout: float,
        primary: bool = False,
    ) -> None:
        if not (0 < timeout < math.inf):
            raise ValueError(f"timeout must be a finite number of seconds > 0: {timeout!r}")
        self._nursery = nursery
        self._locate = locate
        self._login = login
        self._primary = primary
        self.timeout = timeout
        self._link: _Link | None = None
        self._attempt: _Attempt | None = None
        self._closed = False

    def __repr__(self) -> str:
        where = self._link.endpoint if self._link is not None else "not connected"
        return f"<RespConnection {where}>"

    @property
    def client_id(self) -> int | None:
        """The server's id of the connection now (None while there is none)."""
        link = self._link
        return link.client_id if link is not None and link.error is None else None

    async def connect(self) -> int:
        """Connect now, if not connected; returns the connection's client id."""
        link = self._link
        if link is None or link.error is not None:
            link = await self._connected()
        return link.client_id

    async def execute(self, *args: Arg, reply_within: float | None = None) -> Any:
        """Send one command and return its reply; raises its error reply (:class:`RespError`),
        ``ConnectionError`` when the connection broke (the command may have run), or when no
        reply came within ``reply_within`` seconds (the connection's timeout by default; give
        more to a command that blocks: every reply behind a late one waits behind it too, so
        the connection is given up)."""
        reply = (await self._call(pack(args), 1, reply_within))[0]
        if isinstance(reply, RespError):
            raise reply
        return reply

    async def pipeline(
        self, commands: Sequence[Sequence[Arg]], *, reply_within: float | None = None
    ) -> list[Any]:
        """Send ``commands`` at once and return their replies, in order; an error reply is a
        :class:`RespError` in its place (raised by none)."""
        if not commands:
            return []
        return await self._call(pack_many(commands), len(commands), reply_within)

    async def evalsha(
        self,
        source: str,
        keys: Sequence[Arg],
        args: Sequence[Arg],
        *,
        reply_within: float | None = None,
    ) -> Any:
        """Run a Lua script by its SHA1; if the server does not have it (``NOSCRIPT``: it did
        not run), load it and call it once more."""
        sha = script_sha(source)
        command: tuple[Arg, ...] = ("EVALSHA", sha, len(keys), *keys, *args)
        try:
            return await self.execute(*command, reply_within=reply_within)
        except NoScriptError:
            await self.execute("SCRIPT", "LOAD", source, reply_within=reply_within)
            return await self.execute(*command, reply_within=reply_within)

    def close(self) -> None:
        """Close the connection (its reader task closes the socket); calls made after this
        fail."""
        self._closed = True
        link, self._link = self._link, None
        if link is not None:
            link.fail(ConnectionError("the connection was closed"))

    # -- inside -----------------------------------------------------------------------------

    async def _call(self, data: bytes, count: int, reply_within: float | None) -> list[Any]:
        link = self._link
        if link is None or link.error is not None:
            link = await self._connected()
        within = self.timeout if reply_within is None else reply_within
        waiter = _Waiter(count, trio.current_time() + within)
        link.pending.append(waiter)
        link.outbox.append(data)
        if not link.writing:
            await self._flush(link)
        await waiter.wait()
        if waiter.error is not None:
            raise ConnectionError(
                f"the connection to {link.endpoint} broke: {waiter.error}"
            ) from waiter.error
        return waiter.replies

    async def _flush(self, link: _Link) -> None:
        """Send the outbox: after one pass of the scheduler, so that the commands the other
        tasks running now call go in the same write (one system call for all); straight to
        the socket when it takes it all, else through :meth:`_write`."""
        link.writing = True
        try:
            await trio.lowlevel.cancel_shielded_checkpoint()
            if link.error is not None:
                return
            outbox = link.outbox
            data = outbox[0] if len(outbox) == 1 else b"".join(outbox)
            outbox.clear()
            try:
                sent = link.transport.send_now(data)
            except OSError as exc:
                link.fail(exc)
                return
            if sent == len(data):
                return
            outbox.append(memoryview(data)[sent:] if sent else data)
        finally:
            link.writing = False
        await self._write(link)

    async def _write(self, link: _Link) -> None:
        """Write the outbox, and what is added to it meanwhile, until it is empty; shielded
        (a command half written would break the connection for every caller) and bounded."""
        link.writing = True
        try:
            with trio.CancelScope(shield=True), trio.move_on_after(self.timeout) as bounded:
                while link.outbox and link.error is None:
                    data = link.outbox[0] if len(link.outbox) == 1 else b"".join(link.outbox)
                    link.outbox.clear()
                    await link.transport.send_all(data)
            if bounded.cancelled_caught:
                link.fail(TimeoutError(f"could not write to {link.endpoint} in time"))
        except _BROKEN as exc:
            link.fail(exc)
        finally:
            link.writing = False

    async def _connected(self) -> _Link:
        while True:
            if self._closed:
                raise ConnectionError("the connection was closed")
            link = self._link
            if link is not None and link.error is None:
                return link
            attempt = self._attempt
            if attempt is not None:
                await attempt.done.wait()
                if isinstance(attempt.error, Exception):
                    raise attempt.error
                continue  # it succeeded, or its caller was cancelled: look again
            attempt = self._attempt = _Attempt()
            try:
                self._link = await self._open()
            except BaseException as exc:
                attempt.error = exc
                raise
            finally:
                self._attempt = None
                attempt.done.set()

    async def _open(self) -> _Link:
        try:
            with trio.fail_after(self.timeout):
                endpoint = await self._locate()
                stream = await open_stream(endpoint)
                try:
                    reader = RespReader()
                    client_id = await handshake(stream, reader, self._login, primary=self._primary)
                except BaseException:
                    await trio.aclose_forcefully(stream)
                    raise
        except trio.TooSlowError:
            raise TimeoutError("could not connect in time") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionError(f"the connection broke: {exc.__cause__ or exc}") from exc
        link = _Link(_Transport(stream), reader, client_id, endpoint)
        self._nursery.start_soon(self._read, link, name=f"liveactors.cluster.redis:{endpoint}")
        self._nursery.start_soon(self._watch, link, name=f"liveactors.cluster.watch:{endpoint}")
        return link

    async def _read(self, link: _Link) -> None:
        """The reader task of ``link``: each reply to the FIFO's head, until it breaks; and
        its watchdog."""
        transport, reader, pending = link.transport, link.reader, link.pending
        streak = 0
        try:
            with link.scope:
                try:
                    while True:
                        data = await transport.receive()
                        if not data:
                            raise ConnectionError("the server closed the connection")
                        reader.feed(data)
                        while True:
                            reply = reader.get()
                            if reply is INCOMPLETE:
                                break
                            if not pending:
                                raise ProtocolError("a reply that no command asked for")
                            waiter = pending[0]
                            waiter.replies.append(reply)
                            if len(waiter.replies) == waiter.count:
                                pending.popleft()
                                waiter.finish()
                            if isinstance(reply, ReadOnlyError):
                                # Demoted: the next connection asks where the primary is.
                                raise ConnectionError("the server is a replica now")
                        streak += 1
                        if streak == 16:  # data kept coming: let the others run
                            streak = 0
                            await trio.lowlevel.checkpoint()
                except _BROKEN as exc:
                    link.fail(exc)
        finally:
            link.fail(ConnectionError("the connection was closed"))
            if self._link is link:
                self._link = None
            await link.transport.aclose()

    async def _watch(self, link: _Link) -> None:
        """The watchdog of ``link``: gives it up when the reply at the FIFO's head is late
        (every reply behind it waits behind it too)."""
        every = min(1.0, self.timeout / 4)
        with link.watch:
            while True:
                await trio.sleep(every)
                if link.pending and link.pending[0].deadline < trio.current_time():
                    link.fail(TimeoutError(f"no reply from {link.endpoint} in time"))


@asynccontextmanager
async def open_connection(
    locate: Callable[[], Awaitable[Endpoint]],
    login: Login,
    *,
    timeout: float,  # noqa: ASYNC109 - per reply and connection, not for the block
    primary: bool = False,
) -> AsyncIterator[RespConnection]:
    """A :class:`RespConnection` whose reader tasks live in a nursery of this ``async with``
    (enter and leave it in one task). The block's own error comes out as it is."""
    raised: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            connection = RespConnection(nursery, locate, login, timeout=timeout, primary=primary)
            try:
                yield connection
            except BaseException as exc:
                raised = exc
                raise
            finally:
                connection.close()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if raised is not None and _sole(group) is raised:
            raise raised from None
        raise


def _sole(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class RespSubscriber:
    """The messages of some channels, as ``(channel, data)``, on a connection of its own
    (see the module docstring). Read it from one task at a time."""

    def __init__(
        self,
        locate: Callable[[], Awaitable[Endpoint]],
        login: Login,
        channels: Sequence[str],
        *,
        timeout: float,
        primary: bool = False,
        on_subscribed: Callable[[], None] = lambda: None,
        on_error: Callable[[Exception], None] = lambda exc: None,
    ) -> None:
        if not channels:
            raise ValueError("subscribe to at least one channel")
        self._locate = locate
        self._login = login
        self._primary = primary
        self.channels = tuple(channels)
        self.timeout = timeout
        self._on_subscribed = on_subscribed
        self._on_error = on_error
        self._transport: _Transport | None = None
        self._reader = RespReader()
        self._delay = 0.1

    def __aiter__(self) -> RespSubscriber:
        return self

    async def __anext__(self) -> tuple[str, bytes]:
        while True:
            if self._transport is None:
                try:
                    await self._subscribe()
                except Exception as exc:  # unreachable, refused, timed out: again, later
                    self._on_error(exc)
                    await trio.sleep(self._delay)
                    self._delay = min(2.0, self._delay * 2)
                    continue
                self._delay = 0.1
                self._on_subscribed()
            try:
                return await self._receive()
            except (*_BROKEN, RespError) as exc:
                await self.aclose()
                self._on_error(exc)
                await trio.sleep(self._delay)

    async def aclose(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.aclose()

    async def _subscribe(self) -> None:
        try:
            with trio.fail_after(self.timeout):
                stream = await open_stream(await self._locate())
                try:
                    reader = RespReader()
                    await handshake(stream, reader, self._login, primary=self._primary)
                    await stream.send_all(pack(("SUBSCRIBE", *self.channels)))
                    confirmed = 0
                    while confirmed < len(self.channels):
                        reply = reader.get()
                        if reply is INCOMPLETE:
                            data = await stream.receive_some(_RECEIVE)
                            if not data:
                                raise ConnectionError("the server closed the connection")
                            reader.feed(data)
                        elif isinstance(reply, RespError):
                            raise reply
                        elif reply[0] == b"subscribe":
                            confirmed += 1
                except BaseException:
                    await trio.aclose_forcefully(stream)
                    raise
        except trio.TooSlowError:
            raise TimeoutError("could not subscribe in time") from None
        self._transport, self._reader = _Transport(stream), reader

    async def _receive(self) -> tuple[str, bytes]:
        transport, reader = self._transport, self._reader
        assert transport is not None
        while True:
            reply = reader.get()
            if reply is INCOMPLETE:
                data = await transport.receive()
                if not data:
                    raise ConnectionError("the server closed the connection")
                reader.feed(data)
                continue
            if isinstance(reply, RespError):
                raise reply
            if reply[0] == b"message":
                return reply[1].decode(), reply[2]
