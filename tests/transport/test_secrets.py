"""Resumption handles are secrets, like the API key: a close reason that quotes one (a 1008
"session ... not found", a 1011 naming the session) never carries it into an exception's text,
its repr, or a log record. A conversation registers its handles in a :class:`Secrets` it passes
on each :class:`ConnectRequest`; a link redacts what the registry holds when the close arrives,
so a handle that arrived mid-connection is hidden too."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import attrs
import pytest
import trio
import trio_websocket

from liveactors import (
    ConnectionLost,
    ConnectRequest,
    GeminiBackend,
    HandleExpired,
    LiveError,
    SessionRejected,
)
from liveactors._transport import Secrets

MemoryBackend = Callable[..., AbstractAsyncContextManager[GeminiBackend]]  # see conftest.py
HANDLE = "CiQ5ZmVhMWQyYy1oYW5kbGUtb25lEgsIAhAB"
LATER = "CiQ3YjE0OWM1Zi1oYW5kbGUtdHdvEgsIAhAC"


def test_secrets_keep_the_newest_and_redact_longest_first() -> None:
    secrets = Secrets(["old-handle-1"], keep=2)
    secrets.add("handle-2")
    secrets.add(None)  # nothing to hide
    secrets.add("abc")  # too short to be a secret: redacting it would mangle ordinary text
    secrets.add("handle-2-longer")
    assert list(secrets) == ["handle-2", "handle-2-longer"]
    assert secrets.redact("resume handle-2-longer or handle-2") == (
        "resume <redacted> or <redacted>"
    )
    assert secrets.redact("old-handle-1 is forgotten") == "old-handle-1 is forgotten"
    assert "handle" not in repr(secrets) and repr(secrets) == "<Secrets: 2 hidden>"


def test_a_connect_request_never_shows_its_secrets() -> None:
    request = ConnectRequest("ws://fake/ws", secrets=Secrets([HANDLE]))
    assert HANDLE not in repr(request)
    assert request == attrs.evolve(request, secrets=Secrets())  # not part of its identity


@pytest.mark.parametrize(
    ("code", "reason", "error"),
    [
        (1008, f"BidiGenerateContent session not found: {HANDLE}", HandleExpired),
        (1011, f"Internal error in session {HANDLE}.", ConnectionLost),
        (1007, f"Invalid handle {HANDLE!r}.", SessionRejected),
    ],
)
async def test_a_close_reason_quoting_a_handle_is_redacted(
    memory_backend: MemoryBackend,
    code: int,
    reason: str,
    error: type[LiveError],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(stream: trio.abc.Stream, nursery: trio.Nursery) -> None:
        ws = await (await trio_websocket.wrap_server_stream(nursery, stream)).accept()
        await ws.get_message()
        await ws.aclose(code, reason)

    caplog.set_level(logging.DEBUG)
    async with memory_backend(handler) as backend:
        request = attrs.evolve(backend.connect_request(), secrets=Secrets([HANDLE]))
        async with backend.transport.connect(request) as link:
            await link.send('{"setup":{"model":"models/m"}}')
            with pytest.raises(LiveError) as caught:
                await link.receive()
    assert type(caught.value) is error  # the reason is still classified as the service meant
    assert caught.value.reason == reason.replace(HANDLE, "<redacted>")
    for text in (str(caught.value), repr(caught.value), repr(link), str(link.close_info)):
        assert HANDLE not in text
    assert HANDLE not in caplog.text


async def test_a_handle_learnt_mid_connection_is_redacted_too(
    memory_backend: MemoryBackend, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(stream: trio.abc.Stream, nursery: trio.Nursery) -> None:
        ws = await (await trio_websocket.wrap_server_stream(nursery, stream)).accept()
        await ws.get_message()
        await ws.send_message(f'{{"sessionResumptionUpdate":{{"newHandle":"{LATER}"}}}}')
        await ws.get_message()
        # trio-websocket (a server in this process, like the fake) logs the close it sends.
        await ws.aclose(1011, f"Internal error in session {LATER}.")

    caplog.set_level(logging.DEBUG)
    secrets = Secrets([HANDLE])
    async with memory_backend(handler) as backend:
        request = attrs.evolve(backend.connect_request(), secrets=secrets)
        async with backend.transport.connect(request) as link:
            await link.send('{"setup":{"model":"models/m"}}')
            assert LATER in str(await link.receive())
            secrets.add(LATER)  # what a supervisor does with each new handle
            # A server in this process (the fake) logs through trio-websocket what it likes.
            logging.getLogger("trio-websocket").info("server closing session %s", LATER)
            await link.send('{"realtimeInput":{"audioStreamEnd":true}}')
            with pytest.raises(ConnectionLost) as caught:
                await link.receive()
    assert caught.value.reason == "Internal error in session <redacted>."
    assert LATER not in str(caught.value) and LATER not in repr(caught.value)
    assert LATER not in caplog.text
