"""The transport over in-memory streams: real WebSocket framing, no sockets, mock time.

Each test serves connections with trio-websocket's server side
(``trio_websocket.wrap_server_stream``), so the client speaks exactly the bytes it would speak to
the service.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest
import trio
import trio.testing
import trio_websocket

from liveactors import (
    ConnectionLost,
    GeminiBackend,
    HandleExpired,
    LiveError,
    MemoryTransport,
    ServiceBusy,
    SessionRejected,
)
from liveactors._protocol.connection import ConnectionState, LiveConnection
from liveactors._protocol.decode import server_message
from liveactors._protocol.setup import encode_setup

MemoryBackend = Callable[..., AbstractAsyncContextManager[GeminiBackend]]  # see conftest.py
KEY = "AIzaSyD-memory-SECRET-0123456789"
MIB = 2**20


async def test_url_headers_and_frames_in_both_directions(memory_backend: MemoryBackend) -> None:
    seen: dict[str, object] = {}

    async def handler(stream: trio.abc.Stream, nursery: trio.Nursery) -> None:
        request = await trio_websocket.wrap_server_stream(nursery, stream)
        seen["path"] = request.path
        seen["headers"] = dict(request.headers)
        ws = await request.accept()
        seen["setup"] = await ws.get_message()
        await ws.send_message(b'{"setupComplete":{}}')  # binary, as the service does
        await ws.send_message('{"serverContent":{"turnComplete":true}}')  # text
        seen["next"] = await ws.get_message()
        await ws.aclose(1000)

    async with memory_backend(handler, api_key=KEY) as backend:
        conn = LiveConnection()
        async with backend.transport.connect(backend.connect_request()) as link:
            await link.send(conn.send_setup(encode_setup({"response_modalities": ["TEXT"]}, "m")))
            first = await link.receive()
            second = await link.receive()
            assert isinstance(first, bytes) and isinstance(second, str)
            conn.receive(first)
            assert conn.state is ConnectionState.READY
            turn = server_message(conn.receive(second))
            assert turn.server_content and turn.server_content.turn_complete
            await link.send(conn.send({"realtimeInput": {"audioStreamEnd": True}})[1])
            with pytest.raises(ConnectionLost) as caught:
                await link.receive()
            assert caught.value.code == 1000

    assert seen["path"] == (
        "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    )
    headers = seen["headers"]
    assert isinstance(headers, dict)
    assert headers[b"x-goog-api-key"] == KEY.encode()
    assert KEY not in str(seen["path"])
    assert isinstance(seen["setup"], str)  # client frames are text frames
    assert json.loads(str(seen["setup"]))["setup"]["generationConfig"] == {
        "responseModalities": ["TEXT"]
    }
    assert json.loads(str(seen["next"])) == {"realtimeInput": {"audioStreamEnd": True}}


async def test_ephemeral_token_uses_constrained_method_and_token_header(
    memory_backend: MemoryBackend,
) -> None:
    token = "auth_tokens/SECRET-eph-0123"
    seen: dict[str, object] = {}

    async def handler(stream: trio.abc.Stream, nursery: trio.Nursery) -> None:
        request = await trio_websocket.wrap_server_stream(nursery, stream)
        seen["path"], seen["headers"] = request.path, dict(request.headers)
        await request.reject(403)

    async with memory_backend(handler, api_key=token, api_version="v1alpha") as backend:
        with pytest.raises(SessionRejected):
            async with backend.transport.connect(backend.connect_request()):
                pass  # pragma: no cover
    assert seen["path"] == (
        "/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained"
    )
    headers = seen["headers"]
    assert isinstance(headers, dict)
    assert headers[b"authorization"] == f"Token {token}".encode()
    assert b"x-goog-api-key" not in headers
    assert token not in str(seen["path"])


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, ServiceBusy),  # the concurrency limit: retried later
        (500, ConnectionLost),
        (503, ConnectionLost),
        (401, SessionRejected),
        (403, SessionRejected),
        (404, SessionRejected),
    ],
)
@pytest.mark.parametrize("with_body", [True, False])
async def test_rejected_upgrade(
    memory_backend: MemoryBackend, status: int, error: type[LiveError], with_body: bool
) -> None:
    async def handler(stream: trio.abc.Stream, nursery: trio.Nursery) -> None:
        request = await trio_websocket.wrap_server_stream(nursery, stream)
        body = f"denied for key {KEY}".encode() if with_body else None
        await request.reject(status, body=body)

    async with memory_backend(handler, api_key=KEY) as backend:
        with pytest.raises(LiveError) as caught:
            async with backend.transport.connect(backend.connect_request()):
                pass  # pragma: no cover
    assert type(caught.value) is error  # not wrapped in an exception group
    assert caught.value.retryable is issubclass(error, ConnectionLost)
    assert f"HTTP {status}" in str(caught.value)
    assert KEY not in str(caught.value)
    if with_body:
        assert "denied for key <redacted>" in str(caught.value)


async def test_connect_timeout(memory_backend: MemoryBackend, autojump_clock: object) -> None:
    async def silent(stream: trio.abc.Stream, nursery: trio.Nursery) -> None:
        await trio.sleep_forever()

    async with memory_backend(silent, connect_timeout=5.0) as backend:
        start = trio.current_time()
        with pytest.raises(ConnectionLost, match="timed out after 5s"):
            async with backend.transport.connect(backend.connect_request()):
                pass  # pragma: no cover
        assert trio.current_time() - start == pytest.approx(5.0)


async def test_peer_hanging_up_before_the_upgrade_fails_at_once(
    memory_backend: MemoryBackend, autojump_clock: object
) -> None:
    async def hang_up(stream: trio.abc.Stream, nursery: trio.Nursery) -> None:
        await stream.receive_some()
        await stream.aclose()

    async with memory_backend(hang_up, connect_timeout=30.0) as backend:
        start = trio.current_time()
        with pytest.raises(ConnectionLost, match="before the WebSocket upgrade"):
            async with backend.transport.connect(backend.connect_request()):
                pass  # pragma: no cover
        assert trio.current_time() - start < 1.0  # not the connect timeout


async def test_dial_failure_is_connection_lost() -> None:
    async def refuse(request: object) -> trio.abc.Stream:
        raise OSError(111, "Connection refused")

    backend = GeminiBackend(api_key=KEY, base_url="ws://fake", transport=MemoryTransport(refuse))
    with pytest.raises(ConnectionLost, match="Connection refused") as caught:
        async with backend.transport.connect(backend.connect_request()):
            pass  # pragma: no cover
    assert caught.value.retryable and caught.value.code is None


@pytest.mark.parametrize(
    ("code", "reason", "error"),
    [
        (1000, "", ConnectionLost),
        (1007, "Request contains an invalid argument.", SessionRejected),
        (1008, "BidiGenerateContent session not found", HandleExpired),
        (1011, "Deadline expired before operation could complete.", ConnectionLost),
        (1013, "", ConnectionLost),
        (1007, f"API key {KEY} expired. Please renew the API key.", SessionRejected),
    ],
)
async def test_close_codes_surface_typed_with_reason(
    memory_backend: MemoryBackend, code: int, reason: str, error: type[LiveError]
) -> None:
    async def handler(stream: trio.abc.Stream, nursery: trio.Nursery) -> None:
        ws = await (await trio_websocket.wrap_server_stream(nursery, stream)).accept()
        await ws.get_message()
        await ws.aclose(code, reason)

    async with (
        memory_backend(handler, api_key=KEY) as backend,
        backend.transport.connect(backend.connect_request()) as link,
    ):
        await link.send('{"setup":{"model":"models/m"}}')
        with pytest.raises(LiveError) as caught:
            await link.receive()
        with pytest.raises(LiveError) as again:  # sending after close: same error
            await link.send("{}")
    assert type(caught.value) is error and type(again.value) is error
    assert caught.value.code == code
    assert caught.value.reason == reason.replace(KEY, "<redacted>")
    assert KEY not in str(caught.value)
    assert link.close_info is not None and link.close_info.code == code


async def test_abrupt_end_is_1006_connection_lost(memory_backend: MemoryBackend) -> None:
    async def handler(stream: trio.abc.Stream, nursery: trio.Nursery) -> None:
        await (await trio_websocket.wrap_server_stream(nursery, stream)).accept()
        await stream.aclose()  # no close frame

    async with (
        memory_backend(handler) as backend,
        backend.transport.connect(backend.connect_request()) as link,
    ):
        with pytest.raises(ConnectionLost) as caught:
            await link.receive()
    assert caught.value.code == 1006


@pytest.mark.parametrize("binary", [True, False])
async def test_sixteen_mib_messages_are_accepted(
    memory_backend: MemoryBackend, binary: bool
) -> None:
    text = "x" * (16 * MIB - 64)
    payload = json.dumps({"serverContent": {"modelTurn": {"parts": [{"text": text}]}}})
    assert len(payload) <= 16 * MIB

    async def handler(stream: trio.abc.Stream, nursery: trio.Nursery) -> None:
        ws = await (await trio_websocket.wrap_server_stream(nursery, stream)).accept()
        await ws.send_message(payload.encode() if binary else payload)
        with contextlib.suppress(trio_websocket.ConnectionClosed):
            await ws.get_message()

    async with memory_backend(handler) as backend:
        assert backend.connect_request().max_message_size >= 16 * MIB
        async with backend.transport.connect(backend.connect_request()) as link:
            frame = await link.receive()
            assert len(frame) == len(payload)
            assert isinstance(frame, bytes) is binary


async def test_oversized_message_closes_with_1009(memory_backend: MemoryBackend) -> None:
    async def handler(stream: trio.abc.Stream, nursery: trio.Nursery) -> None:
        ws = await (await trio_websocket.wrap_server_stream(nursery, stream)).accept()
        await ws.send_message(b"x" * 2048)
        await trio.sleep_forever()

    async with memory_backend(handler) as backend:
        request = backend.connect_request()
        small = type(request)(url=request.url, headers=request.headers, max_message_size=1024)
        async with backend.transport.connect(small) as link:
            with pytest.raises(ConnectionLost) as caught:
                await link.receive()
    assert caught.value.code == 1009


async def test_aclose_sends_1000_even_from_a_cancelled_scope(
    memory_backend: MemoryBackend, autojump_clock: object
) -> None:
    closed = trio.Event()
    close_codes: list[int | None] = []

    async def handler(stream: trio.abc.Stream, nursery: trio.Nursery) -> None:
        ws = await (await trio_websocket.wrap_server_stream(nursery, stream)).accept()
        try:
            await ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            close_codes.append(exc.reason.code if exc.reason else None)
        closed.set()

    async with memory_backend(handler) as backend:
        assert backend.connect_request().close_timeout == 2.0
        with trio.move_on_after(1.0) as scope:
            async with backend.transport.connect(backend.connect_request()) as link:
                await link.receive()  # blocks until the scope is cancelled
        assert scope.cancelled_caught
        # The closing handshake completed: no waiting out the 2 s close timeout.
        assert trio.current_time() - scope.deadline < 0.5
        with trio.fail_after(5):
            await closed.wait()
    assert close_codes == [1000]


async def test_explicit_close_code_reaches_the_server(memory_backend: MemoryBackend) -> None:
    got: list[tuple[int, str | None]] = []
    done = trio.Event()

    async def handler(stream: trio.abc.Stream, nursery: trio.Nursery) -> None:
        ws = await (await trio_websocket.wrap_server_stream(nursery, stream)).accept()
        try:
            await ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            assert exc.reason is not None
            got.append((exc.reason.code, exc.reason.reason))
        done.set()

    async with (
        memory_backend(handler) as backend,
        backend.transport.connect(backend.connect_request()) as link,
    ):
        await link.aclose(4000, "handoff")
        with pytest.raises(LiveError):
            await link.send("{}")
        with trio.fail_after(5):
            await done.wait()
    assert got == [(4000, "handoff")]


async def test_errors_in_the_caller_pass_through_unwrapped(memory_backend: MemoryBackend) -> None:
    async def handler(stream: trio.abc.Stream, nursery: trio.Nursery) -> None:
        ws = await (await trio_websocket.wrap_server_stream(nursery, stream)).accept()
        await trio.sleep_forever()
        del ws  # pragma: no cover

    async with memory_backend(handler) as backend:
        with pytest.raises(KeyError, match="mine"):
            async with backend.transport.connect(backend.connect_request()):
                raise KeyError("mine")
        with pytest.raises(SessionRejected, match="also mine"):
            async with backend.transport.connect(backend.connect_request()):
                raise SessionRejected("also mine")


async def test_cancelling_a_connect_is_plain_cancellation(
    memory_backend: MemoryBackend, autojump_clock: object
) -> None:
    async def silent(stream: trio.abc.Stream, nursery: trio.Nursery) -> None:
        await trio.sleep_forever()

    async with memory_backend(silent, connect_timeout=60.0) as backend:
        with trio.move_on_after(1.0) as scope:
            async with backend.transport.connect(backend.connect_request()):
                pass  # pragma: no cover
        assert scope.cancelled_caught
