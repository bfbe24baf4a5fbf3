"""The current generation (gemini-3.8-live): framing, tools, barge-in, clientContent, status."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import trio

from liveactors.testing import CallTool, Pause, TurnContext, WaitForInput

from .conftest import (
    RawClient,
    audio_chunk,
    audio_parts,
    connect,
    current,
    current_setup,
    kind_of,
    session_ready,
    transcript_of,
    user_text,
)

BLOCKING = [
    {
        "functionDeclarations": [
            {"name": "get_weather", "behavior": "BLOCKING"},
            {"name": "book_table"},  # no behavior: NON_BLOCKING on 3.8
        ]
    }
]


def _response(call_id: str, name: str, output: Any, **extra: Any) -> dict[str, Any]:
    return {
        "toolResponse": {
            "functionResponses": [
                {"id": call_id, "name": name, "response": {"output": output}, **extra}
            ]
        }
    }


async def _call_id(client: RawClient) -> str:
    return str((await client.until("toolCall"))[-1]["toolCall"]["functionCalls"][0]["id"])


async def test_speech_comes_as_several_parts_with_the_transcript_in_the_same_message() -> None:
    async with current(chunks=2, audio_chunk_seconds=0.05) as server, connect(server) as client:
        await session_ready(client, current_setup())
        await client.send(user_text("hi"))
        messages = await client.turn()
        assert [kind_of(m) for m in messages] == [
            "serverContent.modelTurn",
            "serverContent.modelTurn",
            "serverContent.generationComplete",
            "serverContent.turnComplete",
        ]
        for message in messages[:2]:
            blobs = audio_parts(message)
            assert [b["mimeType"] for b in blobs] == ["audio/pcm;rate=24000"] * 3
            assert all(len(base64.b64decode(b["data"])) == 2 * 1200 for b in blobs)
        assert transcript_of(messages) == "echo #1: hi"
        # 6 parts of 0.05 s = 0.3 s of audio, 32 tokens per second.
        assert messages[-1]["usageMetadata"]["responseTokensDetails"] == [
            {"modality": "AUDIO", "tokenCount": 10}
        ]


async def test_framing_options_restore_the_older_shape() -> None:
    options = {"audio_parts": 1, "transcript_with_audio": False}
    async with current(chunks=1, **options) as server, connect(server) as client:
        await session_ready(client, current_setup())
        await client.send(user_text("hi"))
        assert [kind_of(m) for m in await client.turn()] == [
            "serverContent.modelTurn",
            "serverContent.outputTranscription",
            "serverContent.generationComplete",
            "serverContent.turnComplete",
        ]


async def test_audio_is_paced_at_3_3_times_real_time(autojump_clock: trio.abc.Clock) -> None:
    async with current(chunks=3, pace_audio=True) as server, connect(server) as client:
        await session_ready(client, current_setup())
        await client.send(user_text("paced"))
        times = []
        for _ in range(3):
            await client.until("modelTurn")
            times.append(trio.current_time())
        # Each message carries 3 x 0.1 s of audio; the next waits until it has played.
        assert times == pytest.approx([0.0, 0.3 / 3.3, 0.6 / 3.3])


async def test_a_declaration_without_behavior_runs_non_blocking() -> None:
    async with current() as server, connect(server) as client:
        await session_ready(client, current_setup(tools=BLOCKING))
        await client.send(user_text("call book_table"))
        messages = await client.turn()
        assert [kind_of(m) for m in messages] == [
            "toolCall",
            "serverContent.generationComplete",
            "serverContent.turnComplete",
        ]
        call_id = messages[0]["toolCall"]["functionCalls"][0]["id"]
        await client.send(_response(call_id, "book_table", "booked", scheduling="WHEN_IDLE"))
        assert transcript_of(await client.turn()) == 'echo #2: book_table -> {"output":"booked"}'
        assert server.sessions["session-1"].state.pending_calls == {}


async def test_scheduling_silent_when_idle_and_interrupt(autojump_clock: trio.abc.Clock) -> None:
    def responder(ctx: TurnContext) -> Any:
        if ctx.tool_results:
            return "result"
        if ctx.user_text.startswith("book"):
            return CallTool("book_table")
        return ["talking ", Pause(10), "on"]

    async with current(responder=responder, chunks=1) as server, connect(server) as client:
        await session_ready(client, current_setup(tools=BLOCKING))
        ids = []
        for n in range(3):
            await client.send(user_text(f"book {n}"))
            ids.append(await _call_id(client))
            await client.turn()
        # SILENT: context only.
        await client.send(_response(ids[0], "book_table", 0, scheduling="SILENT"))
        # WHEN_IDLE while the model talks: after the current turn.
        await client.send(user_text("chat"))
        await client.until("modelTurn")
        await client.send(_response(ids[1], "book_table", 1, scheduling="WHEN_IDLE"))
        assert [kind_of(m) for m in await client.turn()][-2:] == [
            "serverContent.generationComplete",
            "serverContent.turnComplete",
        ]
        assert transcript_of(await client.turn()) == "result"
        # INTERRUPT: cuts the current output, answers now.
        await client.send(user_text("chat"))
        await client.until("modelTurn")
        await client.send(_response(ids[2], "book_table", 2, scheduling="INTERRUPT"))
        assert [kind_of(m) for m in await client.turn()] == [
            "serverContent.interrupted",
            "serverContent.turnComplete",
        ]
        assert transcript_of(await client.turn()) == "result"
        outcomes = [t.outcome for t in server.log.turns]
        assert outcomes == ["completed"] * 3 + [
            "completed",
            "completed",
            "interrupted",
            "completed",
        ]
        assert trio.current_time() < 30


async def test_polite_barge_in_interrupts_after_a_delay(autojump_clock: trio.abc.Clock) -> None:
    async with current(chunks=20, chunk_delay=0.1) as server, connect(server) as client:
        await session_ready(client, current_setup(inputAudioTranscription={}))
        await client.send(user_text("tell me a long story"))
        await client.recv()
        spoke_at = trio.current_time()
        await client.send(audio_chunk(0.1))
        messages = await client.until("turnComplete")
        kinds = [kind_of(m) for m in messages]
        # The model went on for a while, then stopped: interrupted, no generationComplete.
        assert kinds[-2:] == ["serverContent.interrupted", "serverContent.turnComplete"]
        assert "serverContent.generationComplete" not in kinds
        assert kinds.count("serverContent.modelTurn") >= 5
        assert trio.current_time() - spoke_at == pytest.approx(0.64)
        # The speech ended (silence gap 0.5 s) before the interruption; it is answered next.
        assert transcript_of(messages, "inputTranscription") == "<audio 0.10s>"
        assert transcript_of(await client.turn()) == "echo #2: <audio 0.10s>"
        assert [t.outcome for t in server.log.turns] == ["interrupted", "completed"]


async def test_polite_barge_in_can_be_turned_off(autojump_clock: trio.abc.Clock) -> None:
    options = {"polite_barge_in": False, "chunks": 20, "chunk_delay": 0.1}
    async with current(**options) as server, connect(server) as client:
        await session_ready(client, current_setup())
        await client.send(user_text("story"))
        await client.recv()
        await client.send(audio_chunk(0.1))
        assert [kind_of(m) for m in await client.until("turnComplete")] == [
            "serverContent.interrupted",
            "serverContent.turnComplete",
        ]


async def test_the_model_keeps_quiet_while_the_user_speaks(
    autojump_clock: trio.abc.Clock,
) -> None:
    def responder(ctx: TurnContext) -> Any:
        if ctx.tool_results:
            return "result"
        return CallTool("book_table") if ctx.user_text == "book" else "ok"

    async with current(responder=responder) as server, connect(server) as client:
        await session_ready(client, current_setup(tools=BLOCKING))
        await client.send(user_text("book"))
        call_id = await _call_id(client)
        await client.turn()
        await client.send(audio_chunk(0.1))  # the user starts talking
        await client.send(_response(call_id, "book_table", "done"))
        with trio.move_on_after(0.3):
            message = await client.recv()
            raise AssertionError(f"the model spoke over the user: {message}")
        # The speech ends (silence gap 0.5 s): its answer, then the result's turn.
        assert transcript_of(await client.turn()) == "ok"
        assert transcript_of(await client.turn()) == "result"


async def test_an_interrupted_blocking_call_is_reissued_under_a_new_id(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with current() as server, connect(server) as client:
        await session_ready(client, current_setup(tools=BLOCKING))
        await client.send(user_text("call get_weather"))
        first = await _call_id(client)
        asked_at = trio.current_time()
        await client.send({"realtimeInput": {"text": "hurry up"}})
        message = await client.recv()
        # No interrupted, no toolCallCancellation: the same call again, under a new id.
        assert kind_of(message) == "toolCall"
        (call,) = message["toolCall"]["functionCalls"]
        assert call["name"] == "get_weather" and call["id"] != first
        assert 2.6 <= trio.current_time() - asked_at <= 3.6
        # The old id is gone; the new one continues the turn, then the new input is answered.
        await client.send(_response(first, "get_weather", "stale"))
        await client.send(_response(call["id"], "get_weather", "sunny"))
        assert transcript_of(await client.turn()) == 'echo #1: get_weather -> {"output":"sunny"}'
        assert transcript_of(await client.turn()) == "echo #2: hurry up"
        assert len(server.log.notes_of("ignored_tool_response")) == 1
        assert server.log.notes_of("call_dropped")
        kinds = server.log.server_kinds(1)
        assert "toolCallCancellation" not in kinds and "serverContent.interrupted" not in kinds
        assert server.log.turns[0].tool_calls == [first, call["id"]]


async def test_reissue_can_be_turned_off() -> None:
    async with current(reissue_blocking_calls=False) as server, connect(server) as client:
        await session_ready(client, current_setup(tools=BLOCKING))
        await client.send(user_text("call get_weather"))
        call_id = await _call_id(client)
        await client.send(user_text("never mind"))
        messages = await client.turn()
        assert messages[1] == {"toolCallCancellation": {"ids": [call_id]}}


async def test_client_content_mid_session_waits_unless_the_turn_is_complete(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with current(chunks=4, chunk_delay=1.0) as server, connect(server) as client:
        await session_ready(client, current_setup())
        await client.send(user_text("first"))
        await client.recv()
        # Explicit roles, no turnComplete: the model goes on, the turns only join the history.
        context = {
            "clientContent": {
                "turns": [
                    {"role": "user", "parts": [{"text": "note"}]},
                    {"role": "model", "parts": [{"text": "noted"}]},
                ]
            }
        }
        await client.send(context)
        kinds = [kind_of(m) for m in await client.turn()]
        assert "serverContent.interrupted" not in kinds
        assert kinds[-2] == "serverContent.generationComplete"
        await client.send(user_text("second"))
        await client.recv()
        await client.send(user_text("third"))  # turnComplete: true interrupts
        assert [kind_of(m) for m in await client.turn()] == [
            "serverContent.interrupted",
            "serverContent.turnComplete",
        ]
        # The seeded model turn counted: 1 first, 2 noted, 3 second, 4 third.
        assert transcript_of(await client.turn()) == "echo #4: third"


async def test_the_3_1_generation_refuses_client_content_after_a_model_turn() -> None:
    async with current(model_profile="3.1") as server, connect(server) as client:
        await session_ready(client, current_setup("models/gemini-3.1-flash-live-preview"))
        await client.send({"realtimeInput": {"text": "hi"}})
        await client.turn()
        await client.send(user_text("more"))
        assert await client.closed() == (1007, "Request contains an invalid argument.")


async def test_the_3_1_generation_calls_blocking_and_takes_thinking_levels() -> None:
    setup = current_setup(
        "models/gemini-3.1-flash-live-preview",
        tools=[{"functionDeclarations": [{"name": "get_weather"}]}],
        generationConfig={"thinkingConfig": {"thinkingLevel": "MINIMAL"}},
    )
    async with current() as server, connect(server) as client:
        await session_ready(client, setup)
        await client.send({"realtimeInput": {"text": "call get_weather"}})
        await _call_id(client)
        with trio.move_on_after(0.05):
            await client.recv()
            raise AssertionError("a BLOCKING call let the turn go on")


@pytest.mark.parametrize(
    ("model", "option", "expected"),
    [
        ("models/gemini-3.8-live", None, None),
        ("models/gemini-3.8-live-extended-thinking", None, "IDLE"),
        ("models/gemini-3.8-live", True, "IDLE"),
        ("models/gemini-3.8-live-extended-thinking", False, None),
    ],
)
async def test_interaction_status_rides_on_turn_complete(
    model: str, option: bool | None, expected: str | None
) -> None:
    async with current(interaction_status=option) as server, connect(server) as client:
        await session_ready(client, current_setup(model))
        await client.send(user_text("hi"))
        content = (await client.turn())[-1]["serverContent"]
        assert content.get("interactionStatus") == expected


async def test_interaction_status_says_in_progress_when_more_follows(
    autojump_clock: trio.abc.Clock,
) -> None:
    setup = current_setup(realtimeInputConfig={"activityHandling": "NO_INTERRUPTION"})
    async with (
        current(interaction_status=True, chunks=2, chunk_delay=1.0) as server,
        connect(server) as client,
    ):
        await session_ready(client, setup)
        await client.send({"realtimeInput": {"text": "one"}})
        await client.recv()
        await client.send({"realtimeInput": {"text": "two"}})  # queued behind the turn
        assert (await client.turn())[-1]["serverContent"]["interactionStatus"] == "IN_PROGRESS"
        last = await client.turn()
        assert transcript_of(last) == "echo #2: two"
        assert last[-1]["serverContent"]["interactionStatus"] == "IDLE"


async def test_a_responder_can_wait_for_more_input() -> None:
    async with (
        current(responder=lambda ctx: ["Go on", WaitForInput()]) as server,
        connect(server) as client,
    ):
        await session_ready(client, current_setup())
        await client.send(user_text("I want to"))
        content = (await client.turn())[-1]["serverContent"]
        assert content == {
            "turnComplete": True,
            "turnCompleteReason": "NEED_MORE_INPUT",
            "waitingForInput": True,
        }
        assert server.log.turns[0].outcome == "completed"


async def test_a_polite_barge_in_never_hits_the_turn_that_answers_the_speech(
    autojump_clock: trio.abc.Clock,
) -> None:
    def responder(ctx: TurnContext) -> Any:
        if ctx.user_text == "story":
            return ["a", Pause(0.3)]  # over before the barge-in delay
        return ["b", Pause(1.0), "c"]  # still talking when the delay runs out

    async with current(responder=responder, chunks=1) as server, connect(server) as client:
        await session_ready(client, current_setup())
        await client.send(user_text("story"))
        first = [await client.recv()]
        await trio.sleep(0.1)
        await client.send(audio_chunk(0.1))
        assert transcript_of(first + await client.turn()) == "a"
        assert transcript_of(await client.turn()) == "bc"
        assert [t.outcome for t in server.log.turns] == ["completed", "completed"]


async def test_an_interrupted_turn_is_in_progress(autojump_clock: trio.abc.Clock) -> None:
    options = {"interaction_status": True, "chunks": 3, "chunk_delay": 1.0}
    async with current(**options) as server, connect(server) as client:
        await session_ready(client, current_setup())
        await client.send(user_text("long"))
        await client.recv()
        await client.send({"realtimeInput": {"text": "stop"}})
        interrupted = await client.turn()
        assert interrupted[-1]["serverContent"] == {
            "turnComplete": True,
            "interactionStatus": "IN_PROGRESS",
        }
        assert (await client.turn())[-1]["serverContent"]["interactionStatus"] == "IDLE"
