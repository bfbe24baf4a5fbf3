"""Quirks of the current service a client must live with: VAD messages, bare frames,
unsolicited handles, an early goAway, and a resumption that forgets prefilled history."""

from __future__ import annotations

import pytest
import trio

from .conftest import (
    audio_chunk,
    connect,
    current,
    current_setup,
    kind_of,
    session_ready,
    transcript_of,
    user_text,
)


async def test_voice_activity_messages_with_audio_offsets(autojump_clock: trio.abc.Clock) -> None:
    async with current(voice_activity=True) as server, connect(server) as client:
        await session_ready(client, current_setup())
        await client.send(audio_chunk(0.2, loud=False))
        for _ in range(3):
            await client.send(audio_chunk(0.1))
        await client.send(audio_chunk(0.1, loud=False))
        start = await client.recv()
        assert start == {"voiceActivity": {"type": "ACTIVITY_START", "audioOffset": "0.200s"}}
        messages = await client.turn()
        assert messages[0] == {"voiceActivity": {"type": "ACTIVITY_END", "audioOffset": "0.500s"}}
        assert transcript_of(messages) == "echo #1: <audio 0.30s>"


async def test_no_voice_activity_messages_by_default(autojump_clock: trio.abc.Clock) -> None:
    async with current() as server, connect(server) as client:
        await session_ready(client, current_setup())
        await client.send(audio_chunk(0.2))
        await client.turn()
        assert "voiceActivity" not in server.log.server_kinds(1)


async def test_bare_empty_frames_now_and_then() -> None:
    async with current(empty_frames=3, chunks=4) as server, connect(server) as client:
        await session_ready(client, current_setup())
        await client.send(user_text("hi"))
        messages = await client.turn()
        assert transcript_of(messages) == "echo #1: hi"
        kinds = server.log.server_kinds(1)
        # setupComplete, 2 chunks, {}, 2 chunks, generationComplete, {}, turnComplete.
        assert kinds == [
            "setupComplete",
            "serverContent.modelTurn",
            "serverContent.modelTurn",
            "empty",
            "serverContent.modelTurn",
            "serverContent.modelTurn",
            "serverContent.generationComplete",
            "empty",
            "serverContent.turnComplete",
        ]
        assert messages.count({}) == 2


async def test_an_unsolicited_handle_resumes_the_session() -> None:
    async with current(unsolicited_resumption=True) as server:
        async with connect(server) as a:
            session = await session_ready(a, current_setup())  # no sessionResumption
            update = (await a.recv())["sessionResumptionUpdate"]
            assert update["resumable"] is True
            await a.send(user_text("one"))
            await a.turn()
            # No further updates: it was not asked for.
            assert "sessionResumptionUpdate" not in [kind_of(m) for m in a.received[2:]]
        async with connect(server) as b:
            setup = current_setup(sessionResumption={"handle": update["newHandle"]})
            assert await session_ready(b, setup) == session
            await b.send(user_text("two"))
            assert transcript_of(await b.turn()) == "echo #2: two"


async def test_early_goaway_then_the_close_at_its_deadline(autojump_clock: trio.abc.Clock) -> None:
    async with current(early_goaway=(1.0, 300.0)) as server, connect(server) as client:
        await session_ready(client, current_setup())
        assert await client.recv() == {"goAway": {"timeLeft": "300s"}}
        assert trio.current_time() == pytest.approx(1.0)
        # The connection still works until the deadline.
        await client.send(user_text("still here"))
        assert transcript_of(await client.turn()) == "echo #1: still here"
        assert await client.closed() == (1011, "Deadline expired before operation could complete.")
        assert trio.current_time() == pytest.approx(301.0)
        assert server.log.connection(1).cause == "lifetime"


async def test_early_goaway_is_scaled(autojump_clock: trio.abc.Clock) -> None:
    async with (
        current(early_goaway=(1.0, 300.0), time_scale=0.01) as server,
        connect(server) as client,
    ):
        await session_ready(client, current_setup())
        assert await client.recv() == {"goAway": {"timeLeft": "3s"}}
        assert (await client.closed())[0] == 1011
        assert trio.current_time() == pytest.approx(3.01)


PREFILL = {
    "clientContent": {
        "turns": [
            {"role": "user", "parts": [{"text": "my name is Ada"}]},
            {"role": "model", "parts": [{"text": "hello Ada"}]},
        ]
    }
}


@pytest.mark.parametrize(
    ("model", "loses", "expected"),
    [
        # gemini-3.8-live forgets it (its table entry says so); the option forces either way.
        ("models/gemini-3.8-live", None, "echo #2: again"),
        ("models/gemini-3.8-live", False, "echo #3: again"),
        ("models/gemini-3.8-live", True, "echo #2: again"),
        ("models/gemini-3.1-flash-live-preview", None, "echo #3: again"),
    ],
)
async def test_resumption_can_forget_the_prefilled_history(
    model: str, loses: bool | None, expected: str
) -> None:
    lost = expected == "echo #2: again"
    async with current(resume_loses_prefill=loses) as server:
        async with connect(server) as a:
            await session_ready(a, current_setup(model, sessionResumption={}))
            await a.recv()
            await a.send(PREFILL)
            await a.send(user_text("question"))
            assert transcript_of(await a.turn()) == "echo #2: question"
            handle = (await a.recv())["sessionResumptionUpdate"]["newHandle"]
        async with connect(server) as b:
            await session_ready(b, current_setup(model, sessionResumption={"handle": handle}))
            await b.send(user_text("again"))
            assert transcript_of(await b.turn()) == expected
        history = [
            e.content["parts"][0]["text"] for e in server.sessions["session-1"].state.history
        ]
        assert ("my name is Ada" in history) is not lost
        assert bool(server.log.notes_of("prefill_lost")) is lost
