"""The server as a whole: shutdown, in-memory and TCP/TLS transports, the liveactors backend."""

from __future__ import annotations

import json

import pytest
import trio

from liveactors import ConnectRequest, GeminiBackend
from liveactors.testing import TEST_AUTH_TOKEN, Pause, open_fake_server

from .conftest import TEXT_MODEL, connect, fake, session_ready, text_setup, user_text


async def test_leaving_the_block_ends_every_connection_and_task(
    autojump_clock: trio.abc.Clock,
) -> None:
    results: list[tuple[int, str]] = []
    async with trio.open_nursery() as nursery:
        async with open_fake_server(
            listen=False, model_profile="2.5", responder=lambda ctx: ["a", Pause(1e6)]
        ) as server:
            server.faults.stall(kind="turnComplete", connection="all")

            async def talk() -> None:
                async with connect(server) as client:
                    await session_ready(client)
                    await client.send(user_text("x"))
                    results.append(await client.closed())

            for _ in range(3):
                nursery.start_soon(talk)
            await server.log.wait_for(lambda: len(server.log.turns) == 3)
        # The server's nursery is gone: its connections ended without a close frame.
        assert [c.cause for c in server.log.connections] == ["shutdown"] * 3
    assert results == [(1006, "")] * 3
    assert [t.outcome for t in server.log.turns] == ["cut"] * 3
    with pytest.raises(trio.ClosedResourceError):
        await server.dial(ConnectRequest(url="ws://x"))


async def _one_turn(backend: GeminiBackend) -> str:
    async with backend.transport.connect(backend.connect_request()) as link:
        await link.send(json.dumps(text_setup()))
        assert "setupComplete" in json.loads(await link.receive())
        await link.send(json.dumps(user_text("via liveactors")))
        text = ""
        while True:
            message = json.loads(await link.receive())
            for part in message.get("serverContent", {}).get("modelTurn", {}).get("parts", []):
                text += part["text"]
            if message.get("serverContent", {}).get("turnComplete"):
                return text


async def test_backend_in_memory(autojump_clock: trio.abc.Clock) -> None:
    async with fake() as server:
        backend = server.backend(model="gemini-test-text")
        assert (backend.base_url, backend.model) == (server.url, "gemini-test-text")
        assert await _one_turn(backend) == "echo #1: via liveactors"


@pytest.mark.parametrize(
    ("profile", "model"),
    [
        ("3.8", "gemini-3.8-live"),
        ("3.1", "gemini-3.1-flash-live-preview"),
        ("2.5", "gemini-2.5-flash-native-audio-preview-12-2025"),
    ],
)
async def test_the_backend_defaults_to_the_profile_model(profile: str, model: str) -> None:
    async with open_fake_server(listen=False, model_profile=profile) as server:
        assert server.model == server.backend().model == model
    async with open_fake_server(listen=False) as server:
        assert server.backend().model == "gemini-3.8-live"


async def test_backend_over_tcp_and_tls() -> None:
    async with fake(listen=True) as server:
        assert server.url == f"ws://127.0.0.1:{server.port}"
        assert await _one_turn(server.backend()) == "echo #1: via liveactors"
        assert await _one_turn(server.backend(memory=True)) == "echo #1: via liveactors"
    async with fake(listen=True, tls=True) as server:
        assert server.url.startswith("wss://127.0.0.1:")
        assert await _one_turn(server.backend()) == "echo #1: via liveactors"


async def test_backend_with_an_ephemeral_token() -> None:
    async with fake() as server:
        assert await _one_turn(server.backend(api_key=TEST_AUTH_TOKEN)) == "echo #1: via liveactors"
        assert server.log.last_connection.method == "BidiGenerateContentConstrained"


async def test_sessions_and_counters_are_exposed() -> None:
    async with fake() as server, connect(server) as client:
        await session_ready(client)
        await client.send(user_text("x"))
        await client.turn()
        assert server.open_connections == [1]
        assert server.sessions["session-1"].model == TEXT_MODEL
        assert server.sessions["session-1"].state.turn == 1
        assert server.messages_sent == len(server.log.sent) == 5
        assert "open=1" in repr(server)


def test_unknown_options_are_refused() -> None:
    with pytest.raises(TypeError):
        trio.run(_open_with, {"no_such_option": 1})
    with pytest.raises(ValueError):
        trio.run(_open_with, {"chunks": 0})


async def _open_with(options: dict[str, object]) -> None:
    async with open_fake_server(listen=False, **options):
        pass


async def test_a_library_conversation_on_the_current_model(
    autojump_clock: trio.abc.Clock,
) -> None:
    """What liveactors asks by default on gemini-3.8-live is answered with audio and its
    transcript (the text of ``ask``)."""
    import liveactors

    async with open_fake_server(listen=False) as server:
        async with liveactors.open_orchestrator(server.backend()) as orch:
            conv = await orch.spawn({"output_audio_transcription": {}}, name="c")
            reply = await conv.ask("Hello")
            assert reply.text == "echo #1: Hello" and reply.audio
            await conv.stop()
        setup = server.log.client_messages(1, kind="setup")[0].body
        assert setup["model"] == "models/gemini-3.8-live"


@pytest.mark.parametrize("express", [False, True])
async def test_a_library_conversation_on_vertex(
    autojump_clock: trio.abc.Clock, express: bool
) -> None:
    import liveactors

    async with open_fake_server(listen=False, vertex=True) as server:
        backend = server.vertex_backend(api_key="test-key" if express else None)
        async with liveactors.open_orchestrator(backend) as orch:
            conv = await orch.spawn({"output_audio_transcription": {}}, name="c")
            assert (await conv.ask("Hello")).text == "echo #1: Hello"
            await conv.stop()
        record = server.log.connection(1)
        assert (record.vertex, record.model) == (True, "gemini-3.8-live")
        model = server.log.client_messages(1, kind="setup")[0].body["model"]
        expected = "publishers/google/models/gemini-3.8-live"
        assert model == (
            expected if express else f"projects/test-project/locations/us-central1/{expected}"
        )
    async with open_fake_server(listen=False) as server:
        with pytest.raises(ValueError, match="vertex=True"):
            server.vertex_backend()
