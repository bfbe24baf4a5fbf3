"""The fake server itself: listener, in-memory dialing, upgrade handling, and its public handle.

:func:`open_fake_server` opens a nursery that owns everything the server runs: the TCP (or TLS)
listener, every connection, every connection's tasks. Leaving the ``async with`` cancels it:
connections end without a close frame, as if the service had vanished, and no task survives.

In-memory connections (:meth:`FakeServer.dial`, what ``MemoryTransport`` calls) go through the
same code as TCP ones, WebSocket handshake included, so a MockClock-autojump test exercises the
very bytes a socket would carry.
"""

from __future__ import annotations

import logging
import ssl
import traceback
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio
import trio.testing
import trio_websocket

from .._backend import GeminiBackend
from .._connect import MemoryTransport
from .._exception_groups import sole_exception
from .._transport import ConnectRequest
from .._vertex import VertexBackend
from ._faults import Faults
from ._log import ConnectionRecord, ServerLog
from ._options import TEST_API_KEY, ServerOptions
from ._profiles import PROFILE_MODELS
from ._resumption import Session
from ._session import Connection
from ._shared import ServerCore
from ._upgrade import HttpRefusal, inspect_upgrade

__all__ = ["FakeServer", "StaticToken", "open_fake_server"]

#: The base URL of a server without a listener (in-memory connections only).
MEMORY_URL = "ws://fake-live-server.invalid"

TOO_MANY_SESSIONS = (
    b'{"error":{"code":429,"message":"Too many concurrent sessions.",'
    b'"status":"RESOURCE_EXHAUSTED"}}'
)
RESOURCE_EXHAUSTED = (
    b'{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).",'
    b'"status":"RESOURCE_EXHAUSTED"}}'
)

log = logging.getLogger("liveactors.testing")


class StaticToken:
    """Credentials for :meth:`FakeServer.vertex_backend`: one fixed access token that never
    expires (any google-auth credentials object would do; this one needs no network)."""

    def __init__(self, token: str) -> None:
        self.token: str | None = token
        self.quota_project_id: str | None = None

    def refresh(self, request: Any, /) -> None:
        """Nothing to refresh: the token never expires."""


class FakeServer:
    """A running fake Live API server (yielded by :func:`open_fake_server`)."""

    def __init__(
        self,
        core: ServerCore,
        nursery: trio.Nursery,
        url: str,
        port: int | None,
        client_ssl_context: ssl.SSLContext | None,
    ) -> None:
        self._core = core
        self._nursery = nursery
        self._closed = False
        #: Base URL for ``GeminiBackend(base_url=...)``: ``ws://host:port``, ``wss://...``, or
        #: a placeholder when there is no listener.
        self.url = url
        #: The TCP port (None without a listener).
        self.port = port
        #: An SSL context trusting the throwaway certificate (``tls=True`` only).
        self.client_ssl_context = client_ssl_context

    def __repr__(self) -> str:
        return f"<FakeServer {self.url} open={len(self._core.open)}>"

    @property
    def options(self) -> ServerOptions:
        return self._core.options

    @property
    def model(self) -> str:
        """The model of the server's ``model_profile`` (what :meth:`backend` uses by default)."""
        return PROFILE_MODELS[self._core.options.model_profile]

    @property
    def log(self) -> ServerLog:
        """Everything clients sent and the server did."""
        return self._core.log

    @property
    def faults(self) -> Faults:
        """Fault injection rules."""
        return self._core.faults

    @property
    def open_connections(self) -> list[int]:
        """Ids of the connections open right now."""
        return sorted(self._core.open)

    @property
    def sessions(self) -> Mapping[str, Session]:
        """Every session by id (its ``state`` holds history, turn counter, pending calls)."""
        return self._core.registry.sessions

    @property
    def messages_sent(self) -> int:
        """Server messages sent so far, over all connections."""
        return self._core.messages_sent

    async def dial(self, request: ConnectRequest) -> trio.abc.Stream:
        """Open an in-memory connection: the client end of a stream this server now serves.

        Matches ``MemoryTransport(dial)``; the server end runs in the server's nursery.
        """
        if self._closed:
            raise trio.ClosedResourceError("the fake server is closed")
        client, server = trio.testing.memory_stream_pair()
        self._nursery.start_soon(serve_stream, self._core, server)
        await trio.lowlevel.checkpoint()
        return client

    def backend(
        self,
        api_key: str | None = None,
        model: str | None = None,
        *,
        memory: bool | None = None,
        **kwargs: Any,
    ) -> GeminiBackend:
        """A :class:`~liveactors.GeminiBackend` pointed at this server.

        ``api_key`` defaults to an accepted test key; ``model`` to the model of the server's
        ``model_profile`` (``gemini-3.8-live`` by default); ``memory`` (default: True when the
        server has no listener) connects through :meth:`dial` instead of TCP. Other keywords go
        to ``GeminiBackend``.
        """
        if api_key is None:
            keys = self.options.api_keys
            api_key = min(keys) if keys else TEST_API_KEY
        self._connection_options(kwargs, model, memory)
        return GeminiBackend(api_key=api_key, base_url=self.url, **kwargs)

    def vertex_backend(
        self,
        project: str | None = "test-project",
        location: str = "us-central1",
        model: str | None = None,
        *,
        api_key: str | None = None,
        memory: bool | None = None,
        **kwargs: Any,
    ) -> VertexBackend:
        """A :class:`~liveactors.VertexBackend` pointed at this server (``vertex=True``).

        By default it authenticates with an OAuth token the server accepts (a
        :class:`StaticToken`); ``api_key=...`` is express mode instead (no project). ``model``,
        ``memory`` and other keywords as for :meth:`backend`.
        """
        if not self.options.vertex:
            raise ValueError("vertex_backend() needs open_fake_server(vertex=True)")
        keys = self.options.api_keys
        accepted = min(keys) if keys else TEST_API_KEY
        if api_key is None:
            kwargs.setdefault("credentials", StaticToken(accepted))
            kwargs["project"] = project
        else:
            kwargs["api_key"] = api_key
        self._connection_options(kwargs, model, memory)
        return VertexBackend(location=location, base_url=self.url, **kwargs)

    def _connection_options(
        self, kwargs: dict[str, Any], model: str | None, memory: bool | None
    ) -> None:
        """The model, and how a backend reaches this server: through :meth:`dial` (in memory,
        the default without a listener) or over TCP, trusting its certificate."""
        kwargs["model"] = model if model is not None else self.model
        if memory is None:
            memory = self.port is None
        if memory:
            kwargs.setdefault("transport", MemoryTransport(self.dial))
        elif self.client_ssl_context is not None:
            kwargs.setdefault("ssl_context", self.client_ssl_context)


@asynccontextmanager
async def open_fake_server(**options: Any) -> AsyncIterator[FakeServer]:
    """Run a fake Live API server for the duration of the block.

    Options are the fields of :class:`~liveactors.testing.ServerOptions` (``listen=False`` for
    in-memory only, ``responder=...``, ``connection_lifetime=...``, ``time_scale=...`` ...).
    """
    settings = ServerOptions(**options)
    core = ServerCore(settings)
    server_context, client_context = _tls_contexts(settings)
    try:
        async with trio.open_nursery() as nursery:
            url, port = MEMORY_URL, None
            if settings.listen:
                handler = partial(serve_stream, core)
                if server_context is None:
                    listeners = await nursery.start(
                        partial(trio.serve_tcp, handler, settings.port, host=settings.host)
                    )
                else:
                    listeners = await nursery.start(
                        partial(
                            trio.serve_ssl_over_tcp,
                            handler,
                            settings.port,
                            server_context,
                            host=settings.host,
                            https_compatible=True,
                        )
                    )
                port = _port_of(listeners[0])
                scheme = "wss" if server_context is not None else "ws"
                url = f"{scheme}://{_url_host(settings.host)}:{port}"
            server = FakeServer(core, nursery, url, port, client_context)
            try:
                yield server
            finally:
                server._closed = True
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The server's own tasks never raise into this nursery; a group here wraps what the
        # body of the ``async with`` raised. Hand that back as itself.
        sole = sole_exception(group)
        if sole is group:
            raise
        raise sole from None


def _port_of(listener: trio.abc.Listener[Any]) -> int:
    if isinstance(listener, trio.SSLListener):
        listener = listener.transport_listener
    assert isinstance(listener, trio.SocketListener)
    port: int = listener.socket.getsockname()[1]
    return port


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _tls_contexts(options: ServerOptions) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    if options.ssl_context is not None:
        return options.ssl_context, None
    if not options.tls:
        return None, None
    try:
        import trustme
    except ImportError:  # pragma: no cover - trustme is a test dependency
        raise RuntimeError("tls=True needs the 'trustme' package; pass ssl_context=...") from None
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost", "::1")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    return server_context, client_context


async def serve_stream(core: ServerCore, stream: trio.abc.Stream) -> None:
    """Handle one incoming byte stream: WebSocket upgrade, then the Live protocol.

    Nothing a client does can crash the server: errors end this connection and are logged.
    """
    try:
        async with trio.open_nursery() as nursery:
            await _upgrade_and_serve(core, stream, nursery)
            nursery.cancel_scope.cancel()
    except* (
        trio.BrokenResourceError,
        trio.ClosedResourceError,
        trio_websocket.ConnectionClosed,
        OSError,
    ):
        pass  # the client went away during the handshake
    except* Exception as group:
        detail = "".join(traceback.format_exception(group)).rstrip()
        core.log.note(None, None, "error", detail)
        log.error("fake server connection failed:\n%s", detail)
    finally:
        await trio.aclose_forcefully(stream)


async def _upgrade_and_serve(
    core: ServerCore, stream: trio.abc.Stream, nursery: trio.Nursery
) -> None:
    options = core.options
    try:
        with trio.fail_after(options.handshake_timeout):
            request = await trio_websocket.wrap_server_stream(
                nursery,
                stream,
                max_message_size=options.max_message_size,
            )
    except trio.TooSlowError:
        return
    decision = inspect_upgrade(request.path, request.headers, options)
    if not isinstance(decision, HttpRefusal):
        refusal = core.faults.take_upgrade_refusal()
        if refusal is not None:
            decision = HttpRefusal(*refusal)
        elif options.max_connections is not None and len(core.open) >= options.max_connections:
            decision = HttpRefusal(429, TOO_MANY_SESSIONS)
        elif (
            options.max_sessions is not None
            and options.max_sessions_refusal == "http"
            and len(core.open) >= options.max_sessions
        ):
            decision = HttpRefusal(429, RESOURCE_EXHAUSTED)
    if isinstance(decision, HttpRefusal):
        core.log.note(None, None, "upgrade_refused", f"{decision.status} {request.path}")
        await request.reject(
            decision.status,
            extra_headers=[(b"content-type", b"application/json; charset=UTF-8")],
            body=decision.body,
        )
        return
    ws = await request.accept()
    record = ConnectionRecord(
        core.next_connection_id(),
        decision.path,
        decision.api_version,
        decision.method,
        trio.current_time(),
        vertex=decision.vertex,
    )
    core.log.add_connection(record)
    connection = Connection(core, ws, stream, record, auth_error=decision.auth_error)
    core.open[record.id] = connection
    await connection.serve()
