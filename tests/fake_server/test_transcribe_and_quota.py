"""The speech-to-text model (gemini-3.5-transcribe-live), and quota and concurrency limits."""

from __future__ import annotations

import pytest
import trio
import trio_websocket

from .conftest import (
    audio_chunk,
    connect,
    current,
    current_setup,
    kind_of,
    session_ready,
    user_text,
)

TRANSCRIBE = {
    "setup": {
        "model": "models/gemini-3.5-transcribe-live",
        "generationConfig": {"responseModalities": ["TEXT"]},
    }
}
QUOTA = (1011, "You exceeded your current quota, please check your plan and billing details.")
EXHAUSTED = (1011, "Resource has been exhausted (e.g. check quota).")


async def test_transcription_sends_interim_pieces_then_the_final_text(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with current() as server, connect(server) as client:
        await session_ready(client, TRANSCRIBE)
        for utterance in (0.5, 0.2):
            for _ in range(round(utterance * 10)):
                await client.send(audio_chunk(0.1))
                await trio.sleep(0.1)
            await client.send({"realtimeInput": {"audioStreamEnd": True}})
        first = await client.turn()
        assert [m["serverContent"] for m in first] == [
            {"interimInputTranscription": {"text": "<audio 0.10s>"}},
            {"interimInputTranscription": {"text": "<audio 0.30s>"}},
            {"interimInputTranscription": {"text": "<audio 0.50s>"}},
            {"inputTranscription": {"text": "<audio 0.50s>"}},
            {"turnComplete": True},
        ]
        assert first[-1]["usageMetadata"]["promptTokenCount"] == 16
        second = await client.turn()
        assert [kind_of(m) for m in second][-2:] == [
            "serverContent.inputTranscription",
            "serverContent.turnComplete",
        ]
        # Text in, nothing out: a transcription model never answers.
        await client.send(user_text("hello?"))
        with trio.move_on_after(5):
            await client.recv()
            raise AssertionError("the transcription model answered")
        assert server.log.turns == []
        assert "serverContent.modelTurn" not in server.log.server_kinds(1)


async def test_transcription_refuses_audio_output() -> None:
    async with current() as server, connect(server) as client:
        setup = {"setup": {**TRANSCRIBE["setup"], "generationConfig": {}}}
        await session_ready(client, setup)  # TEXT is its default modality
    async with current() as server, connect(server) as client:
        bad = {
            "setup": {
                "model": "models/gemini-3.5-transcribe-live",
                "generationConfig": {"responseModalities": ["AUDIO"]},
            }
        }
        await client.send(bad)
        assert (await client.closed())[0] == 1007


async def test_quota_fault() -> None:
    async with current() as server:
        fault = server.faults.exceed_quota(before="setupComplete")
        async with connect(server) as client:
            await client.send(current_setup())
            assert await client.closed() == QUOTA
        server.faults.exceed_quota(connection="all", after="turnComplete")
        async with connect(server) as client:
            await session_ready(client, current_setup())
            await client.send(user_text("x"))
            await client.turn()
            assert await client.closed() == QUOTA
        assert fault.fired == 1


async def test_max_sessions_closes_the_setup_beyond_the_limit() -> None:
    async with current(max_sessions=2) as server:
        async with connect(server) as a, connect(server) as b:
            await session_ready(a, current_setup())
            await session_ready(b, current_setup())
            async with connect(server) as c:
                await c.send(current_setup())
                assert await c.closed() == EXHAUSTED
            assert server.log.connection(3).session is None
        async with connect(server) as d:  # the others ended: room again
            await session_ready(d, current_setup())


async def test_max_sessions_can_refuse_the_upgrade_with_429() -> None:
    async with (
        current(max_sessions=1, max_sessions_refusal="http") as server,
        connect(server) as a,
    ):
        await session_ready(a, current_setup())
        with pytest.raises(trio_websocket.ConnectionRejected) as info:
            async with connect(server):
                pass
        assert info.value.status_code == 429
        assert b"Resource has been exhausted" in (info.value.body or b"")
