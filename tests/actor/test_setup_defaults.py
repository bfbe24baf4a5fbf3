"""What a conversation asks the service for: session resumption and sliding-window context
compression by default, an explicit compression setting as given, and a handle from the
config used for the first connect."""

from __future__ import annotations

from typing import Any

import trio
from google.genai import types
from trio.testing import MockClock

import liveactors
from liveactors import events
from liveactors._models import FAKE_TEXT_MODEL

from .conftest import AUDIO, AUDIO_MODEL, TEXT, client_bodies, conversation, fake, recording


def setups(server: Any) -> list[dict[str, Any]]:
    return client_bodies(server, "setup")


async def test_resumption_and_sliding_window_are_on_by_default(autojump_clock: MockClock) -> None:
    async with fake() as server, conversation(server) as (_, conv):
        await conv.ask("hi")
        [setup] = setups(server)
    assert setup == {
        "model": "models/fake-half-cascade-live",
        "generationConfig": {"responseModalities": ["TEXT"]},
        "sessionResumption": {},
        "contextWindowCompression": {"slidingWindow": {}},
    }


async def test_defaults_for_a_live_connect_config(autojump_clock: MockClock) -> None:
    config = types.LiveConnectConfig(response_modalities=[types.Modality.AUDIO])
    async with fake() as server, conversation(server, config, model=AUDIO_MODEL):
        [setup] = setups(server)
    assert setup["sessionResumption"] == {}
    assert setup["contextWindowCompression"] == {"slidingWindow": {}}
    # The caller's config object is left as it was.
    assert config.session_resumption is None
    assert config.context_window_compression is None


async def test_default_compression_lifts_the_session_limit(autojump_clock: MockClock) -> None:
    """Without compression the service ends an audio session after 15 minutes; with the
    default sliding window it goes on (the fake's connections last 10 minutes, so this
    conversation hands off twice)."""
    async with (
        fake() as server,
        conversation(server, AUDIO, model=AUDIO_MODEL) as (_, conv),
        recording(conv.subscribe, events.Connected) as rec,
    ):
        await trio.sleep(25 * 60)
        reply = await conv.ask("still there?")
        assert reply.audio
        assert conv.state is liveactors.ConversationState.READY
        assert len(server.log.sessions) == 1
        assert not [c for c in server.log.connections if c.cause == "session_limit"]
        assert len(rec.of(events.Connected)) >= 2
        assert all(e.resumed for e in rec.of(events.Connected))


async def test_explicit_compression_is_sent_as_given(autojump_clock: MockClock) -> None:
    config = dict(
        TEXT,
        context_window_compression={
            "trigger_tokens": 40,
            "sliding_window": {"target_tokens": 20},
        },
    )
    async with fake() as server, conversation(server, config) as (_, conv):
        for i in range(6):
            await conv.ask(f"question number {i} with a few words in it")
        [setup] = setups(server)
        compression = setup["contextWindowCompression"]
        assert int(compression["triggerTokens"]) == 40
        assert int(compression["slidingWindow"]["targetTokens"]) == 20
        # The service honours it: the small trigger makes it compress.
        assert server.log.notes_of("compression")


async def test_explicit_compression_without_sliding_window_opts_out(
    autojump_clock: MockClock,
) -> None:
    config = dict(TEXT, context_window_compression={"trigger_tokens": 1000})
    async with fake() as server, conversation(server, config):
        [setup] = setups(server)
    assert "slidingWindow" not in setup["contextWindowCompression"]
    assert int(setup["contextWindowCompression"]["triggerTokens"]) == 1000


async def test_explicit_session_resumption_is_kept(autojump_clock: MockClock) -> None:
    config = dict(AUDIO, session_resumption={"handle": None})
    async with fake() as server, conversation(server, config, model=AUDIO_MODEL) as (_, conv):
        await conv.ask("x")
        [setup] = setups(server)
    assert setup["sessionResumption"] == {}


async def test_handle_in_the_config_is_used_for_the_first_connect(
    autojump_clock: MockClock,
) -> None:
    async with fake() as server:
        backend = server.backend(model=FAKE_TEXT_MODEL)
        async with liveactors.open_orchestrator(backend) as orch:
            first = await orch.spawn(TEXT, name="first")
            async with first.subscribe(events.ResumptionUpdate) as sub:
                await first.ask("remember me")
                await trio.sleep(1)
                handles = []
                while (event := sub.receive_nowait()) is not None:
                    if event.resumable:
                        handles.append(event.handle)
            await first.stop()
            handle = handles[-1]
            assert handle

            config = dict(TEXT, session_resumption={"handle": handle})
            async with orch.subscribe(events.Connected, conversation="second") as connected:
                second = await orch.spawn(config, name="second")
                [event] = [connected.receive_nowait()]
            assert isinstance(event, events.Connected)
            assert event.resumed
            reply = await second.ask("who am I?")
        record = server.log.connections[1]
        assert record.resumed_from == handle
        assert record.session == server.log.connections[0].session == event.session_id
        assert setups(server)[1]["sessionResumption"] == {"handle": handle}
        # The session went on: the model's turn counter continues.
        assert reply.text == "echo #2: who am I?"
        assert len(server.log.sessions) == 1


async def test_an_empty_compression_config_opts_out(autojump_clock: MockClock) -> None:
    config = types.LiveConnectConfig(
        response_modalities=[types.Modality.TEXT],
        context_window_compression=types.ContextWindowCompressionConfig(),
    )
    async with fake() as server, conversation(server, config):
        [setup] = setups(server)
    assert "contextWindowCompression" not in setup
    assert setup["sessionResumption"] == {}  # resumption stays on: supervision needs it
