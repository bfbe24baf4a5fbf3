"""The production transport over real loopback sockets (and TLS), plus the no-secrets-anywhere
check across a connect and its failures. Real time, so everything here is short; no MockClock.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
import trio_websocket
import trustme

from liveactors import ConnectionLost, GeminiBackend, LiveError, SessionRejected
from liveactors._connect import _default_ssl_context
from liveactors._pipe import Pipe
from liveactors._protocol.connection import ConnectionState, LiveConnection
from liveactors._protocol.setup import encode_setup

KEY = "AIzaSyD-loopback-SECRET-0123456789"
TOKEN = "auth_tokens/SECRET-loopback-token-0123"

Handler = Callable[[trio_websocket.WebSocketRequest], Awaitable[None]]


async def serve(
    nursery: trio.Nursery, handler: Handler, ssl_context: ssl.SSLContext | None = None
) -> int:
    server = await nursery.start(
        trio_websocket.serve_websocket, handler, "127.0.0.1", 0, ssl_context
    )
    assert isinstance(server, trio_websocket.WebSocketServer)
    return server.port


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def setup_handler(request: trio_websocket.WebSocketRequest) -> None:
    ws = await request.accept()
    await ws.get_message()
    await ws.send_message(b'{"setupComplete":{}}')
    with contextlib.suppress(trio_websocket.ConnectionClosed):
        await ws.get_message()


async def test_setup_over_tcp(nursery: trio.Nursery) -> None:
    port = await serve(nursery, setup_handler)
    backend = GeminiBackend(api_key=KEY, base_url=f"http://127.0.0.1:{port}/")
    conn = LiveConnection()
    with trio.fail_after(5):
        async with backend.transport.connect(backend.connect_request()) as link:
            await link.send(conn.send_setup(encode_setup(None, "m")))
            conn.receive(await link.receive())
    assert conn.state is ConnectionState.READY


async def test_refused_connection_is_connection_lost() -> None:
    backend = GeminiBackend(api_key=KEY, base_url=f"ws://127.0.0.1:{closed_port()}")
    with trio.fail_after(5), pytest.raises(ConnectionLost) as caught:
        async with backend.transport.connect(backend.connect_request()):
            pass  # pragma: no cover
    assert caught.value.retryable
    assert "cannot connect" in str(caught.value)


async def test_connect_timeout_on_a_silent_server() -> None:
    # The kernel completes the TCP handshake from the backlog; nobody ever answers the upgrade.
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    try:
        port = listener.socket.getsockname()[1]
        backend = GeminiBackend(api_key=KEY, base_url=f"ws://127.0.0.1:{port}", connect_timeout=0.2)
        with trio.fail_after(5), pytest.raises(ConnectionLost, match=r"timed out after 0\.2s"):
            async with backend.transport.connect(backend.connect_request()):
                pass  # pragma: no cover
    finally:
        await listener.aclose()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def test_tls_verified_by_default(nursery: trio.Nursery, ca: trustme.CA) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    port = await serve(nursery, setup_handler, server_context)

    untrusted = GeminiBackend(api_key=KEY, base_url=f"wss://127.0.0.1:{port}", connect_timeout=4)
    start = trio.current_time()
    with trio.fail_after(5), pytest.raises(SessionRejected, match="TLS failed") as caught:
        async with untrusted.transport.connect(untrusted.connect_request()):
            pass  # pragma: no cover
    assert trio.current_time() - start < 2  # noticed at once, not at the connect timeout
    assert not caught.value.retryable

    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    trusted = GeminiBackend(
        api_key=KEY, base_url=f"https://127.0.0.1:{port}", ssl_context=client_context
    )
    conn = LiveConnection()
    with trio.fail_after(5):
        async with trusted.transport.connect(trusted.connect_request()) as link:
            await link.send(conn.send_setup(encode_setup(None, "m")))
            conn.receive(await link.receive())
    assert conn.state is ConnectionState.READY


async def test_connections_share_one_default_tls_context(
    nursery: trio.Nursery, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each default context loads the system's CA store (about 17 ms and 840 KiB, kept by the
    # live connection): one per connection would not scale.
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    port = await serve(nursery, setup_handler, server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # what the default context trusts
    _default_ssl_context.cache_clear()
    try:
        backend = GeminiBackend(api_key=KEY, base_url=f"wss://127.0.0.1:{port}")
        contexts = []
        for _ in range(2):
            with trio.fail_after(5):
                async with backend.transport.connect(backend.connect_request()) as link:
                    conn = LiveConnection()
                    await link.send(conn.send_setup(encode_setup(None, "m")))
                    conn.receive(await link.receive())
                    stream = link._stream
                    assert isinstance(stream, Pipe)  # TLS in memory over the socket
                    assert stream.context is not None
                    contexts.append(stream.context)
    finally:
        _default_ssl_context.cache_clear()
    assert contexts[0] is contexts[1]
    assert contexts[0].verify_mode is ssl.CERT_REQUIRED and contexts[0].check_hostname


# --- no secret anywhere --------------------------------------------------------------------


async def echo_and_reject(request: trio_websocket.WebSocketRequest) -> None:
    headers = dict(request.headers)
    credential = headers.get(b"x-goog-api-key") or headers.get(b"authorization") or b""
    await request.reject(401, body=b"API key not valid: " + credential)


async def echo_in_close_reason(request: trio_websocket.WebSocketRequest) -> None:
    headers = dict(request.headers)
    credential = headers.get(b"x-goog-api-key") or headers.get(b"authorization") or b""
    ws = await request.accept()
    await ws.get_message()
    await ws.aclose(1007, "API key expired: " + credential.decode()[:90])


async def accept_then_drop(request: trio_websocket.WebSocketRequest) -> None:
    ws = await request.accept()
    await ws.get_message()
    await ws.send_message(b'{"setupComplete":{}}')
    await ws.aclose(1011, "Internal error encountered.")


@pytest.mark.parametrize("credential", [KEY, TOKEN])
async def test_credential_never_in_logs_reprs_or_errors(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture, ca: trustme.CA, credential: str
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("trio-websocket", "liveactors", "liveactors.transport"):
        logging.getLogger(name).setLevel(logging.DEBUG)

    errors: list[BaseException] = []
    texts: list[str] = []

    async def attempt(backend: GeminiBackend) -> None:
        texts.extend([repr(backend), repr(backend.connect_request())])
        try:
            with trio.fail_after(5):
                async with backend.transport.connect(backend.connect_request()) as link:
                    texts.append(repr(link))
                    await link.send('{"setup":{"model":"models/m"}}')
                    while True:
                        await link.receive()
        except LiveError as exc:
            errors.append(exc)

    for handler in (echo_and_reject, echo_in_close_reason, accept_then_drop):
        port = await serve(nursery, handler)
        await attempt(GeminiBackend(api_key=credential, base_url=f"ws://127.0.0.1:{port}"))
    await attempt(GeminiBackend(api_key=credential, base_url=f"ws://127.0.0.1:{closed_port()}"))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    port = await serve(nursery, setup_handler, server_context)
    await attempt(GeminiBackend(api_key=credential, base_url=f"wss://127.0.0.1:{port}"))

    assert [type(e).__name__ for e in errors] == [
        "SessionRejected",  # HTTP 401, body echoing the key
        "SessionRejected",  # 1007, reason echoing the key
        "ConnectionLost",  # 1011
        "ConnectionLost",  # refused
        "SessionRejected",  # TLS
    ]
    for error in errors:
        texts.extend([str(error), repr(error), "".join(traceback.format_exception(error))])
        texts.append(repr(getattr(error, "close", None)))
    assert "<redacted>" in str(errors[0]) and "<redacted>" in str(errors[1])
    texts.extend(record.getMessage() for record in caplog.records)
    texts.extend(record.exc_text or "" for record in caplog.records)
    assert any(r.name == "trio-websocket" for r in caplog.records)  # its logs were captured
    secret = credential.split("/")[-1]
    leaks = [text for text in texts if secret in text]
    assert leaks == []
