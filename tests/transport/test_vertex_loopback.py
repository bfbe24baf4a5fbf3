"""A ``VertexBackend`` end to end against the fake server in Vertex mode: the upgrade carries the
bearer token, ``setup`` names the full model path and asks for transparent resumption, and a
conversation answers, across a forced reconnect.

These depend on the fake accepting ``projects/.../publishers/google/models/...`` model paths on
its Vertex endpoint (``open_fake_server(vertex=True)``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import trio

from liveactors import MemoryTransport, open_orchestrator
from liveactors._models import Platform
from liveactors._protocol.setup import encode_setup
from liveactors._vertex import VertexBackend
from liveactors.testing import FakeServer, open_fake_server

TOKEN = "ya29.SECRET-loopback-token-0123456789"
RESOURCE = "projects/p-1/locations/us-central1/publishers/google/models/gemini-3.8-live"


class Credentials:
    """Credentials whose first refresh yields :data:`TOKEN`."""

    def __init__(self) -> None:
        self.token: str | None = None
        self.expiry: datetime | None = None
        self.refreshes = 0

    def refresh(self, request: Any) -> None:
        self.refreshes += 1
        self.token = TOKEN
        self.expiry = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1)


@asynccontextmanager
async def vertex_fake(**options: Any) -> AsyncIterator[tuple[FakeServer, VertexBackend]]:
    async with open_fake_server(vertex=True, api_keys={TOKEN}, listen=False, **options) as server:
        backend = VertexBackend(
            project="p-1",
            location="us-central1",
            credentials=Credentials(),
            base_url=server.url,
            transport=MemoryTransport(server.dial),
        )
        yield server, backend


async def test_setup_on_the_vertex_endpoint() -> None:
    async with vertex_fake() as (server, backend):
        await backend.prepare()
        request = backend.connect_request()
        assert request.resource == (
            "/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent"
        )
        setup = encode_setup(
            {"session_resumption": {"transparent": True}},
            backend.model_resource,
            platform=backend.platform,
        )
        async with backend.transport.connect(request) as link:
            await link.send(json.dumps(setup))
            with trio.fail_after(5):
                reply = json.loads(await link.receive())
        assert "setupComplete" in reply, reply
        (sent,) = server.log.client_messages()
        assert sent.body["model"] == RESOURCE
        assert sent.body["sessionResumption"] == {"transparent": True}
        assert server.log.last_connection.path.startswith("/ws/google.cloud.aiplatform.")


async def test_a_conversation_on_vertex_asks_for_transparent_resumption() -> None:
    async with vertex_fake(chunks=2) as (server, backend), open_orchestrator(backend) as orch:
        with trio.fail_after(10):
            conv = await orch.spawn(name="v1")
            first = await conv.ask("hello vertex")
            server.faults.close_now(1000, "The operation was cancelled.")
            second = await conv.ask("and again")
        assert "hello vertex" in first.text
        assert "and again" in second.text
        setups = [m for m in server.log.client_messages() if m.kind == "setup"]
        assert len(setups) >= 2  # the Vertex 10-minute cut (close 1000) was resumed
        for setup in setups:
            assert setup.body["model"] == RESOURCE
            assert setup.body["sessionResumption"].get("transparent") is True
        assert setups[-1].body["sessionResumption"].get("handle")
        assert backend._tokens.refreshes == 1  # one token for every connect


async def test_platform_is_vertex() -> None:
    async with vertex_fake() as (_, backend):
        assert backend.platform is Platform.VERTEX


async def test_express_mode_conversation() -> None:
    key = "AIzaSy-SECRET-express-loopback-key"
    async with open_fake_server(vertex=True, api_keys={key}, listen=False) as server:
        backend = VertexBackend(
            api_key=key, base_url=server.url, transport=MemoryTransport(server.dial)
        )
        async with open_orchestrator(backend) as orch:
            with trio.fail_after(10):
                conv = await orch.spawn(name="express")
                reply = await conv.ask("hello express")
        assert "hello express" in reply.text
        (setup, *_) = [m for m in server.log.client_messages() if m.kind == "setup"]
        assert setup.body["model"] == "publishers/google/models/gemini-3.8-live"
