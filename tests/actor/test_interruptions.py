"""Interruptions: barge-in while the model answers ends that turn with ``Interrupted`` then
``TurnComplete(interrupted=True)`` (never ``GenerationComplete``), everything of the turn keeps
its number so a player can drop it, and the next turn has the next number."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
from trio.testing import MockClock

import liveactors
from liveactors import events

from .conftest import (
    AUDIO,
    AUDIO_MODEL,
    MANUAL_VAD,
    Recorder,
    conversation,
    fake,
    pcm,
    recording,
)

#: A slow answer: five pieces a second apart.
SLOW = {"chunks": 5, "chunk_delay": 1.0}


def check_interrupted_turn(rec: Recorder, turn: int) -> None:
    """``turn`` ended by barge-in, and the turn after it ran normally."""
    of_turn = [e for e in rec.events if e.turn == turn]
    kinds = [type(e).__name__ for e in of_turn]
    assert "Interrupted" in kinds
    assert kinds.index("Interrupted") < kinds.index("TurnComplete")
    assert "GenerationComplete" not in kinds
    [done] = [e for e in of_turn if isinstance(e, events.TurnComplete)]
    assert done.interrupted
    # Nothing of the interrupted turn comes after its TurnComplete.
    assert of_turn[-1] is done or all(
        isinstance(e, events.ResumptionUpdate) for e in of_turn[of_turn.index(done) + 1 :]
    )
    following = [e for e in rec.events if isinstance(e, events.TurnComplete) and e.turn > turn]
    assert following and following[0].turn == turn + 1
    assert not following[0].interrupted
    after = [e for e in rec.events if e.turn == turn + 1]
    assert any(isinstance(e, events.GenerationComplete) for e in after)


async def test_client_content_barges_in(autojump_clock: MockClock) -> None:
    async with (
        fake(**SLOW) as server,
        conversation(server) as (_, conv),
        recording(conv.subscribe) as rec,
    ):
        replies: list[liveactors.Reply] = []
        async with trio.open_nursery() as nursery:

            async def ask() -> None:
                replies.append(await conv.ask("tell me a long story"))

            nursery.start_soon(ask)
            await rec.wait_for(lambda: len(rec.of(events.TextDelta)) == 2)
            await conv.send_text("stop, please")
            await rec.wait_for(lambda: len(rec.of(events.TurnComplete)) == 2)
        check_interrupted_turn(rec, 1)
        [reply] = replies
        assert reply.interrupted
        assert reply.turn == 1
        # What arrived before the barge-in is the partial answer.
        assert reply.text == "".join(e.text for e in rec.of(events.TextDelta) if e.turn == 1)
        assert "echo #1: tell me a long story".startswith(reply.text)
        assert len(reply.text) < len("echo #1: tell me a long story")
        second = "".join(e.text for e in rec.of(events.TextDelta) if e.turn == 2)
        assert second == "echo #2: stop, please"
        assert [t.outcome for t in server.log.model_turns()] == ["interrupted", "completed"]
        assert server.log.answered() == ["stop, please"]
        assert conv.statistics().turns == 2
        # The next ask is the next turn.
        following = await conv.ask("ok")
        assert (following.turn, following.interrupted) == (3, False)


async def test_ask_that_barges_in_gets_its_own_answer(autojump_clock: MockClock) -> None:
    async with fake(**SLOW) as server, conversation(server) as (_, conv):
        replies: dict[str, liveactors.Reply] = {}

        async def ask(text: str) -> None:
            replies[text] = await conv.ask(text)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, "first")
            await trio.sleep(2.5)
            nursery.start_soon(ask, "second")
        assert replies["first"].interrupted
        assert replies["first"].turn == 1
        assert not replies["second"].interrupted
        assert replies["second"].turn == 2
        assert replies["second"].text == "echo #2: second"
        assert server.log.answer_counts() == {"second": 1}


async def test_realtime_text_barges_in(autojump_clock: MockClock) -> None:
    async with (
        fake(**SLOW) as server,
        conversation(server) as (_, conv),
        recording(conv.subscribe) as rec,
    ):
        await conv.send_text("long answer please")
        await rec.wait_for(lambda: len(rec.of(events.TextDelta)) == 1)
        await conv.send_realtime_text("hold on")
        await rec.wait_for(lambda: len(rec.of(events.TurnComplete)) == 2)
        check_interrupted_turn(rec, 1)
        assert server.log.model_turns()[1].trigger == "realtimeInput.text"
        assert server.log.answered() == ["hold on"]


async def test_speech_barges_in_and_the_player_can_drop_the_turns_audio(
    autojump_clock: MockClock,
) -> None:
    config = dict(AUDIO, output_audio_transcription={})
    async with (
        fake(**SLOW) as server,
        conversation(server, config, model=AUDIO_MODEL) as (_, conv),
        recording(conv.subscribe) as rec,
    ):
        replies: list[liveactors.Reply] = []
        async with trio.open_nursery() as nursery:

            async def ask() -> None:
                replies.append(await conv.ask("sing"))

            nursery.start_soon(ask)
            await rec.wait_for(lambda: len(rec.of(events.AudioChunk)) == 2)
            await conv.send_audio(pcm(0.2))  # speech: the fake's VAD barges in
            interrupted = await rec.wait_for_event(events.Interrupted)
            await conv.send_audio(pcm(0.1, loud=False))
            await conv.audio_stream_end()
            await rec.wait_for(lambda: len(rec.of(events.TurnComplete)) == 2)
        check_interrupted_turn(rec, 1)
        assert interrupted.turn == 1
        chunks = rec.of(events.AudioChunk)
        first = [c for c in chunks if c.turn == 1]
        second = [c for c in chunks if c.turn == 2]
        assert len(first) >= 2
        assert len(second) == 5
        assert first + second == chunks
        # Every chunk of turn 1 came before the Interrupted event.
        assert all(c.seq < interrupted.seq for c in first)
        # A player that drops the interrupted turn plays exactly the second answer.
        played = b"".join(c.data for c in chunks if c.turn != interrupted.turn)
        assert played == b"".join(c.data for c in second)
        [reply] = replies
        assert reply.interrupted
        assert reply.audio == b"".join(c.data for c in first)
        said = "".join(e.text for e in rec.of(events.OutputTranscript) if e.turn == 2)
        assert said == "echo #2: <audio 0.20s>"
        assert server.log.answered() == ["<audio 0.20s>"]


async def test_activity_start_barges_in_with_manual_vad(autojump_clock: MockClock) -> None:
    config = dict(AUDIO, realtime_input_config=MANUAL_VAD)
    async with (
        fake(**SLOW) as server,
        conversation(server, config, model=AUDIO_MODEL) as (_, conv),
        recording(conv.subscribe) as rec,
    ):
        await conv.send_text("talk")
        await rec.wait_for(lambda: len(rec.of(events.AudioChunk)) == 1)
        await conv.activity_start()
        await rec.wait_for_event(events.Interrupted)
        await conv.send_audio(pcm(0.3))
        await conv.activity_end()
        await rec.wait_for(lambda: len(rec.of(events.TurnComplete)) == 2)
        check_interrupted_turn(rec, 1)
        assert server.log.answered() == ["<audio 0.30s>"]


async def test_no_interruption_answers_after_the_turn(autojump_clock: MockClock) -> None:
    config = {
        "response_modalities": ["TEXT"],
        "realtime_input_config": {"activity_handling": "NO_INTERRUPTION"},
    }
    async with (
        fake(**SLOW) as server,
        conversation(server, config) as (_, conv),
        recording(conv.subscribe) as rec,
    ):
        await conv.send_text("first")
        await rec.wait_for(lambda: len(rec.of(events.TextDelta)) == 1)
        await conv.send_realtime_text("second")
        await rec.wait_for(lambda: len(rec.of(events.TurnComplete)) == 2)
        assert not rec.of(events.Interrupted)
        assert [e.interrupted for e in rec.of(events.TurnComplete)] == [False, False]
        assert len(rec.of(events.GenerationComplete)) == 2
        assert server.log.answered() == ["first", "second"]


BargeIn = Callable[[liveactors.ConversationRef], Awaitable[None]]


@pytest.mark.parametrize(
    "barge_in",
    [lambda c: c.send_text("again"), lambda c: c.send_realtime_text("again")],
    ids=["clientContent", "realtimeText"],
)
async def test_repeated_barge_ins_number_turns_consecutively(
    barge_in: BargeIn, autojump_clock: MockClock
) -> None:
    async with (
        fake(**SLOW) as server,
        conversation(server) as (_, conv),
        recording(conv.subscribe) as rec,
    ):
        await conv.send_text("start")
        for n in range(1, 4):
            await rec.wait_for(lambda n=n: any(e.turn == n for e in rec.of(events.TextDelta)))
            await barge_in(conv)
        await rec.wait_for(lambda: len(rec.of(events.TurnComplete)) == 4)
        done = rec.of(events.TurnComplete)
        assert [e.turn for e in done] == [1, 2, 3, 4]
        assert [e.interrupted for e in done] == [True, True, True, False]
        assert len(rec.of(events.Interrupted)) == 3
        assert [e.turn for e in rec.of(events.Interrupted)] == [1, 2, 3]
        assert [t.outcome for t in server.log.model_turns()] == ["interrupted"] * 3 + ["completed"]
