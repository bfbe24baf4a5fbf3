"""Message orderings: barge-in, tool calls, cancellations, NON_BLOCKING scheduling."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from liveactors.testing import CallTool, Pause, TurnContext

from .conftest import (
    RawClient,
    audio_chunk,
    audio_setup,
    connect,
    fake,
    kind_of,
    session_ready,
    text_of,
    text_setup,
    user_text,
)

TOOLS = [
    {
        "functionDeclarations": [
            {
                "name": "get_weather",
                "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}},
            },
            {"name": "book_table", "behavior": "NON_BLOCKING"},
        ]
    }
]


async def _kinds_until_turn_complete(client: RawClient) -> list[str]:
    return [kind_of(m) for m in await client.turn()]


@pytest.mark.parametrize(
    "barge_in",
    [user_text("stop"), {"realtimeInput": {"text": "stop"}}],
)
async def test_barge_in_interrupts_without_generation_complete(
    autojump_clock: trio.abc.Clock, barge_in: dict[str, Any]
) -> None:
    async with fake(chunks=4, chunk_delay=1.0) as server, connect(server) as client:
        await session_ready(client)
        await client.send(user_text("a long story"))
        assert kind_of(await client.recv()) == "serverContent.modelTurn"
        await client.send(barge_in)
        assert await _kinds_until_turn_complete(client) == [
            "serverContent.interrupted",
            "serverContent.turnComplete",
        ]
        second = await client.turn()
        assert text_of(second) == "echo #2: stop"
        first, new = server.log.turns
        assert (first.outcome, first.user_text, first.reply_text) == (
            "interrupted",
            "a long story",
            "echo ",
        )
        assert (new.outcome, new.user_text) == ("completed", "stop")
        # Only what the client got stays in the history.
        history = [e.content for e in server.sessions["session-1"].state.history]
        assert {"role": "model", "parts": [{"text": "echo "}]} in history


async def test_speech_barges_in_at_once(autojump_clock: trio.abc.Clock) -> None:
    async with fake(chunks=4, chunk_delay=1.0) as server, connect(server) as client:
        await session_ready(client, audio_setup(inputAudioTranscription={}))
        await client.send(user_text("talk"))
        await client.recv()
        await client.send(audio_chunk(0.1, loud=False))  # silence does not interrupt
        await trio.sleep(0.5)
        await client.send(audio_chunk(0.1))
        assert await _kinds_until_turn_complete(client) == [
            "serverContent.interrupted",
            "serverContent.turnComplete",
        ]
        assert trio.current_time() == pytest.approx(0.5)
        await client.send({"realtimeInput": {"audioStreamEnd": True}})
        messages = await client.turn()
        assert messages[0]["serverContent"]["inputTranscription"]["text"] == "<audio 0.10s>"
        assert server.log.turns[0].outcome == "interrupted"


async def test_no_interruption_queues_the_new_turn(autojump_clock: trio.abc.Clock) -> None:
    setup = text_setup(realtimeInputConfig={"activityHandling": "NO_INTERRUPTION"})
    async with fake(chunks=3, chunk_delay=1.0) as server, connect(server) as client:
        await session_ready(client, setup)
        await client.send({"realtimeInput": {"text": "first"}})
        await client.recv()
        await client.send({"realtimeInput": {"text": "second"}})
        await client.send({"realtimeInput": {"text": "third"}})
        assert text_of(await client.turn()).endswith("first")
        assert text_of(await client.turn()) == "echo #2: second third"
        assert [t.outcome for t in server.log.turns] == ["completed", "completed"]


async def test_barge_in_after_generation_complete_does_not_interrupt() -> None:
    async with fake() as server:
        server.faults.delay(0.05, kind="turnComplete")
        async with connect(server) as client:
            await session_ready(client)
            await client.send(user_text("one"))
            await client.until("generationComplete")
            await client.send(user_text("two"))
            assert await _kinds_until_turn_complete(client) == ["serverContent.turnComplete"]
            assert text_of(await client.turn()) == "echo #2: two"
            assert [t.outcome for t in server.log.turns] == ["completed", "completed"]


async def test_blocking_tool_call_round_trip() -> None:
    async with fake() as server, connect(server) as client:
        await session_ready(client, text_setup(tools=TOOLS))
        await client.send(user_text('call get_weather {"city": "Paris"}'))
        call = await client.recv()
        assert kind_of(call) == "toolCall"
        (function_call,) = call["toolCall"]["functionCalls"]
        assert function_call["name"] == "get_weather" and function_call["args"] == {"city": "Paris"}
        with trio.move_on_after(0.05):
            await client.recv()
            raise AssertionError("the turn went on without the tool response")
        await client.send(
            {
                "tool_response": {
                    "function_responses": [
                        {
                            "id": function_call["id"],
                            "name": "get_weather",
                            "response": {"output": {"temp_c": 18}},
                        }
                    ]
                }
            }
        )
        messages = await client.turn()
        assert text_of(messages) == 'echo #1: get_weather -> {"output":{"temp_c":18}}'
        (turn,) = server.log.turns
        assert turn.outcome == "completed" and turn.tool_calls == [function_call["id"]]


async def test_several_calls_in_one_message_wait_for_every_response() -> None:
    def responder(ctx: TurnContext) -> Any:
        if ctx.tool_results:
            return f"got {len(ctx.tool_results)}"
        return [CallTool("get_weather", {"city": "A"}), CallTool("get_weather", {"city": "B"})]

    async with fake(responder=responder) as server, connect(server) as client:
        await session_ready(client, text_setup(tools=TOOLS))
        await client.send(user_text("weather"))
        calls = (await client.recv())["toolCall"]["functionCalls"]
        assert len(calls) == 2 and calls[0]["id"] != calls[1]["id"]
        await client.send(
            {
                "toolResponse": {
                    "functionResponses": [
                        {"id": calls[1]["id"], "name": "get_weather", "response": {}}
                    ]
                }
            }
        )
        with trio.move_on_after(0.05):
            await client.recv()
            raise AssertionError("continued before every response arrived")
        await client.send(
            {
                "toolResponse": {
                    "functionResponses": [
                        {"id": calls[0]["id"], "name": "get_weather", "response": {}}
                    ]
                }
            }
        )
        assert text_of(await client.turn()) == "got 2"


async def test_barge_in_cancels_a_pending_call() -> None:
    async with fake() as server, connect(server) as client:
        await session_ready(client, text_setup(tools=TOOLS))
        await client.send(user_text("call get_weather"))
        call_id = (await client.recv())["toolCall"]["functionCalls"][0]["id"]
        await client.send(user_text("never mind"))
        messages = await client.turn()
        assert [kind_of(m) for m in messages] == [
            "serverContent.interrupted",
            "toolCallCancellation",
            "serverContent.turnComplete",
        ]
        assert messages[1] == {"toolCallCancellation": {"ids": [call_id]}}
        assert text_of(await client.turn()) == "echo #2: never mind"
        # A late response for the cancelled call is ignored and logged.
        await client.send(
            {
                "toolResponse": {
                    "functionResponses": [{"id": call_id, "name": "get_weather", "response": {}}]
                }
            }
        )
        await client.send(
            {
                "toolResponse": {
                    "functionResponses": [{"id": "made-up", "name": "x", "response": {}}]
                }
            }
        )
        await server.log.wait_for(lambda: len(server.log.notes_of("ignored_tool_response")) == 2)
        assert [t.outcome for t in server.log.turns] == ["interrupted", "completed"]


async def test_non_blocking_call_lets_the_turn_finish_and_when_idle_answers_later() -> None:
    async with fake() as server, connect(server) as client:
        await session_ready(client, text_setup(tools=TOOLS, sessionResumption={}))
        await client.recv()  # the first handle
        await client.send(user_text("call book_table"))
        messages = await client.turn()
        assert [kind_of(m) for m in messages] == [
            "sessionResumptionUpdate",
            "toolCall",
            "serverContent.generationComplete",
            "serverContent.turnComplete",
        ]
        call_id = messages[1]["toolCall"]["functionCalls"][0]["id"]
        await client.send(
            {
                "toolResponse": {
                    "functionResponses": [
                        {"id": call_id, "name": "book_table", "response": {"output": "booked"}}
                    ]
                }
            }
        )
        result_turn = await client.turn()
        assert text_of(result_turn) == 'echo #2: book_table -> {"output":"booked"}'
        # Idle again and nothing pending: a fresh handle.
        assert (await client.recv())["sessionResumptionUpdate"]["resumable"] is True
        assert server.log.turns[1].trigger == "toolResponse"


async def test_non_blocking_silent_and_will_continue() -> None:
    async with fake() as server, connect(server) as client:
        await session_ready(client, text_setup(tools=TOOLS))
        await client.send(user_text("call book_table"))
        call_id = (await client.until("toolCall"))[-1]["toolCall"]["functionCalls"][0]["id"]
        await client.turn()
        # willContinue keeps the call open; SILENT only adds to the context.
        partial = {
            "id": call_id,
            "name": "book_table",
            "response": {"output": "1/2"},
            "willContinue": True,
            "scheduling": "SILENT",
        }
        await client.send({"toolResponse": {"functionResponses": [partial]}})
        final = {
            "id": call_id,
            "name": "book_table",
            "response": {"output": "2/2"},
            "scheduling": "WHEN_IDLE",
        }
        await client.send({"toolResponse": {"functionResponses": [final]}})
        assert text_of(await client.turn()) == 'echo #2: book_table -> {"output":"2/2"}'
        await client.send(
            {"toolResponse": {"functionResponses": [final]}}
        )  # the call is closed now
        await server.log.wait_for(lambda: server.log.notes_of("ignored_tool_response"))


async def test_non_blocking_interrupt_scheduling_cuts_current_output(
    autojump_clock: trio.abc.Clock,
) -> None:
    def responder(ctx: TurnContext) -> Any:
        if ctx.tool_results:
            return "result turn"
        if ctx.user_text == "book":
            return CallTool("book_table")
        return ["talking ", Pause(10), "on and on"]

    async with fake(responder=responder, chunks=1) as server, connect(server) as client:
        await session_ready(client, text_setup(tools=TOOLS))
        await client.send(user_text("book"))
        call_id = (await client.until("toolCall"))[-1]["toolCall"]["functionCalls"][0]["id"]
        await client.turn()
        await client.send(user_text("chat"))
        await client.recv()  # "talking "
        response = {
            "id": call_id,
            "name": "book_table",
            "response": {"output": "ok"},
            "scheduling": "INTERRUPT",
        }
        await client.send({"toolResponse": {"functionResponses": [response]}})
        assert await _kinds_until_turn_complete(client) == [
            "serverContent.interrupted",
            "serverContent.turnComplete",
        ]
        assert text_of(await client.turn()) == "result turn"
        assert [t.outcome for t in server.log.turns] == ["completed", "interrupted", "completed"]
        assert trio.current_time() < 10


async def test_when_idle_waits_for_the_current_turn(autojump_clock: trio.abc.Clock) -> None:
    def responder(ctx: TurnContext) -> Any:
        if ctx.tool_results:
            return "result"
        return CallTool("book_table") if ctx.user_text == "book" else ["a", Pause(1), "b"]

    async with fake(responder=responder, chunks=1) as server, connect(server) as client:
        await session_ready(client, text_setup(tools=TOOLS))
        await client.send(user_text("book"))
        call_id = (await client.until("toolCall"))[-1]["toolCall"]["functionCalls"][0]["id"]
        await client.turn()
        await client.send(user_text("chat"))
        await client.recv()
        await client.send(
            {
                "toolResponse": {
                    "functionResponses": [{"id": call_id, "name": "book_table", "response": {}}]
                }
            }
        )
        assert text_of(await client.turn()) == "b"
        assert text_of(await client.turn()) == "result"
        assert server.log.turns[1].reply_text == "ab"
        assert [t.outcome for t in server.log.turns] == ["completed"] * 3
