"""The 3.x behaviours end to end over real loopback sockets: the fake server in its 3.8 profile
with each quirk switched on, and a conversation that must come through it intact.

Timings are short real seconds (no MockClock with real sockets); the in-memory versions in
``test_generation_3x.py`` cover the same ground deterministically.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

import liveactors
from liveactors import events
from liveactors.testing import FakeServer, open_fake_server

from .conftest import Recorder, client_bodies, pcm, recording

DEFAULT = liveactors.DEFAULT_MODEL


@asynccontextmanager
async def talking(
    config: Any = None,
    *,
    model: str = DEFAULT,
    actor: Any = liveactors.Conversation,
    vertex: bool = False,
    **options: Any,
) -> AsyncIterator[tuple[FakeServer, liveactors.ConversationRef, Recorder]]:
    """A 3.8 fake on loopback, one conversation on it, and a recorder of its events."""
    with trio.fail_after(30):
        async with open_fake_server(model_profile="3.8", vertex=vertex, **options) as server:
            backend = server.vertex_backend(model=model) if vertex else server.backend(model=model)
            async with liveactors.open_orchestrator(backend) as orch:
                conv = await orch.spawn(config, name="c", actor=actor)
                async with recording(conv.subscribe) as rec:
                    yield server, conv, rec
            assert not server.log.errors, server.log.errors[0].detail


async def test_audio_and_transcript_in_several_parts_per_message() -> None:
    async with talking(audio_parts=3) as (server, conv, rec):
        reply = await conv.ask("hello there")
    assert reply.text.endswith("hello there")
    parts = [
        len(m.message["serverContent"]["modelTurn"]["parts"])
        for m in server.log.server_messages()
        if "modelTurn" in m.message.get("serverContent", {})
    ]
    assert max(parts) == 3
    chunks = [e for e in rec.of(events.AudioChunk) if e.turn == reply.turn]
    assert reply.audio == b"".join(e.data for e in chunks)
    assert len(chunks) == sum(parts)


async def test_bare_frames_unsolicited_updates_and_voice_activity() -> None:
    async with talking(
        {"input_audio_transcription": {}},
        empty_frames=2,
        unsolicited_resumption=True,
        voice_activity=True,
    ) as (server, conv, rec):
        for _ in range(6):
            await conv.send_audio(pcm(0.1))
            await trio.sleep(0.02)
        for _ in range(8):
            await conv.send_audio(pcm(0.1, loud=False))
            await trio.sleep(0.02)
        await rec.wait_for(lambda: rec.of(events.TurnComplete))
        reply = await conv.ask("still fine?")
    assert reply.text.endswith("still fine?")
    assert any(m.message == {} for m in server.log.server_messages())
    kinds = [e.kind for e in rec.of(events.VoiceActivity)]
    assert "ACTIVITY_START" in kinds and "ACTIVITY_END" in kinds
    assert all(e.audio_offset is not None for e in rec.of(events.VoiceActivity))
    seqs = [e.seq for e in rec.events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


class Clock(liveactors.Conversation):
    async def on_tool_call(self, call: Any) -> Any:
        await trio.sleep(0.3)
        return {"time": "noon"}


async def test_non_blocking_tools_by_default_while_audio_flows() -> None:
    config = {"tools": [{"function_declarations": [{"name": "get_time"}]}]}
    async with talking(config, actor=Clock) as (server, conv, rec):
        await conv.ask("call get_time")
        await rec.wait_for(lambda: len(rec.of(events.TurnComplete)) >= 2)
    [body] = client_bodies(server, "toolResponse")
    assert body["functionResponses"][0]["scheduling"] == "WHEN_IDLE"
    assert "noon" in "".join(e.text for e in rec.of(events.OutputTranscript))


class SlowLookup(liveactors.Conversation):
    runs = 0

    async def on_tool_call(self, call: Any) -> Any:
        type(self).runs += 1
        await trio.sleep(0.6)
        return {"answer": 42}


async def test_a_reissued_blocking_call_runs_once() -> None:
    SlowLookup.runs = 0
    declaration = {"name": "lookup", "behavior": "BLOCKING"}
    config = {"tools": [{"function_declarations": [declaration]}]}
    async with (
        talking(config, actor=SlowLookup, reissue_delay=(0.2, 0.3)) as (_, conv, rec),
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(conv.ask, "call lookup")
        await rec.wait_for(lambda: rec.of(events.ToolCall))
        await conv.send_realtime_text("are you there?")
        await rec.wait_for(lambda: len(rec.of(events.ToolCall)) == 2)
        await rec.wait_for(lambda: rec.of(events.TurnComplete))
    assert SlowLookup.runs == 1
    assert not rec.of(events.ToolCallCancelled)


async def test_polite_barge_in_interrupts_without_generation_complete() -> None:
    async with talking(chunks=8, pace_audio=True, barge_in_delay=0.1) as (_, conv, rec):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conv.ask, "tell me a long story")
            await rec.wait_for(lambda: rec.of(events.AudioChunk))
            for _ in range(5):
                await conv.send_audio(pcm(0.1))
                await trio.sleep(0.05)
            await rec.wait_for(lambda: rec.of(events.Interrupted))
            nursery.cancel_scope.cancel()
        await rec.wait_for(lambda: any(e.interrupted for e in rec.of(events.TurnComplete)))
    cut = rec.of(events.Interrupted)[0].turn
    assert not [e for e in rec.of(events.GenerationComplete) if e.turn == cut]


async def test_an_early_goaway_with_minutes_left_hands_off_after_the_reply() -> None:
    async with talking(chunks=4, chunk_delay=0.1, early_goaway=(0.2, 300.0)) as (
        server,
        conv,
        rec,
    ):
        first = await conv.ask("one")
        await rec.wait_for(lambda: rec.of(events.GoAway))
        second = await conv.ask("two")
    assert first.text.endswith("one") and second.text.endswith("two")
    assert not first.interrupted
    assert conv.statistics().handoffs >= 1
    assert server.log.answer_counts() == {"one": 1, "two": 1}


async def test_the_transcription_model() -> None:
    async with talking(model="gemini-3.5-transcribe-live") as (server, conv, rec):
        for _ in range(4):
            await conv.send_audio(pcm(0.1))
            await trio.sleep(0.02)
        await conv.audio_stream_end()
        await rec.wait_for(lambda: rec.of(events.TurnComplete))
    final = [e for e in rec.of(events.InputTranscript) if not e.interim]
    assert final and final[-1].text.startswith("<audio")
    assert any(e.interim for e in rec.of(events.InputTranscript))
    assert not rec.of(events.AudioChunk)
    assert server.log.turns == []


async def test_a_live_avatar_on_vertex() -> None:
    config = {"response_modalities": ["VIDEO"], "avatar_config": {"avatar_name": "Kira"}}
    async with talking(config, vertex=True) as (_, conv, rec):
        reply = await conv.ask("hi")
        await rec.wait_for(lambda: rec.of(events.TurnComplete))
    video = rec.of(events.VideoChunk)
    assert video[0].init and video[0].data[4:8] == b"ftyp"
    assert reply.text.endswith("hi")


async def test_quota_fails_at_once_and_the_concurrency_limit_waits() -> None:
    async with open_fake_server(model_profile="3.8", max_sessions=1) as server:
        backend = server.backend()
        policy = liveactors.RestartPolicy(max_restarts=1)
        async with liveactors.open_orchestrator(backend, restart=policy) as orch:
            first = await orch.spawn(None, name="a")
            with trio.fail_after(20):
                async with trio.open_nursery() as nursery:
                    second: list[liveactors.ConversationRef] = []

                    async def spawn_second() -> None:
                        second.append(await orch.spawn(None, name="b"))

                    nursery.start_soon(spawn_second)
                    # Refused as busy (not failed) until the first stops and frees the quota.
                    await trio.sleep(1.0)
                    await first.stop()
            [b] = second
            assert b.statistics().busy_retries >= 1
            assert (await b.ask("hello")).text.endswith("hello")
            server.faults.exceed_quota(connection="open")
            with trio.fail_after(10):
                await b.wait_closed()
            assert b.state is liveactors.ConversationState.FAILED
            assert b.statistics().reconnects == 0
            with pytest.raises(liveactors.SessionRejected, match="quota"):
                await b.send_text("more?")
