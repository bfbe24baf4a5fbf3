"""Helpers for the liveactors.web tests: the app under a real Hypercorn on loopback, in the
test's own trio loop (with the orchestrator and the in-memory fake server), and a client.

These run on the real clock: Hypercorn and the client talk over real sockets.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import trio
import trio_websocket
from starlette.applications import Starlette

import liveactors
from liveactors import web
from liveactors.testing import FakeServer, open_fake_server

#: The fake server's VAD counts a chunk with a sample this loud as speech (its default: 100).
LOUD = 3000


def tone(seconds: float, *, rate: int = 16_000, amplitude: int = LOUD) -> bytes:
    """16-bit little-endian PCM of a 220 Hz tone."""
    n = round(seconds * rate)
    return struct.pack(
        f"<{n}h", *(round(amplitude * math.sin(2 * math.pi * 220 * i / rate)) for i in range(n))
    )


def silence(seconds: float, *, rate: int = 16_000) -> bytes:
    return bytes(2 * round(seconds * rate))


@attrs.define
class Web:
    """The app, served: where it listens and what it runs on."""

    server: FakeServer
    orch: liveactors.Orchestrator
    app: Starlette
    url: str

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    @property
    def endpoint(self) -> web.LiveEndpoint:
        endpoint: web.LiveEndpoint = self.app.state.live
        return endpoint


@asynccontextmanager
async def serving(
    *,
    fake: dict[str, Any] | None = None,
    api_key: str | None = None,
    **app_options: Any,
) -> AsyncIterator[Web]:
    """The fake server (in memory), an orchestrator on it, and ``web.app`` under Hypercorn."""
    async with (
        open_fake_server(listen=False, **(fake or {})) as server,
        liveactors.open_orchestrator(server.backend(api_key=api_key), grace=1.0) as orch,
    ):
        application = web.app(orch, **app_options)
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(partial(web.serve, application, "127.0.0.1", 0))
            yield Web(server, orch, application, urls[0])
            nursery.cancel_scope.cancel()


class Client:
    """A socket of the protocol: JSON messages and audio frames, kept apart."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.audio = bytearray()
        self.frames: list[str | bytes] = []

    async def send(self, **message: Any) -> None:
        await self.ws.send_message(json.dumps(message))

    async def next(self) -> str | bytes:
        frame = await self.ws.get_message()
        self.frames.append(frame)
        if isinstance(frame, bytes):
            self.audio += frame
        else:
            self.messages.append(json.loads(frame))
        return frame

    async def until(self, type_: str, *, within: float = 5.0) -> dict[str, Any]:
        """Read until a JSON message of ``type_`` arrives; returns it."""
        with trio.fail_after(within):
            while True:
                frame = await self.next()
                if isinstance(frame, str) and self.messages[-1]["type"] == type_:
                    return self.messages[-1]

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == type_]

    def said(self) -> str:
        """The model's words so far (its output transcription)."""
        return "".join(m["text"] for m in self.of("OutputTranscript"))


async def eventually(check: Callable[[], bool], *, within: float = 5.0) -> None:
    """Wait (polling) until ``check()`` holds."""
    with trio.fail_after(within):
        while True:
            if check():
                return
            await trio.sleep(0.02)


@asynccontextmanager
async def connect(url: str, **kwargs: Any) -> AsyncIterator[Client]:
    async with trio_websocket.open_websocket_url(url, **kwargs) as ws:
        yield Client(ws)
