"""The deterministic model: echo replies, chunking and pacing, audio, VAD, custom responders."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import trio

from liveactors.testing import (
    CallTool,
    CloseConnection,
    DropConnection,
    Pause,
    Say,
    SendMessage,
    SendPart,
    TurnContext,
)

from .conftest import (
    TEXT_MODEL,
    audio_chunk,
    audio_setup,
    connect,
    fake,
    kind_of,
    session_ready,
    text_of,
    text_setup,
    transcript_of,
    user_text,
)


async def test_echo_with_turn_counter_in_chunks_and_protocol_order() -> None:
    async with fake(chunks=3) as server, connect(server) as client:
        await session_ready(client)
        await client.send(user_text("hello"))
        first = await client.turn()
        assert [kind_of(m) for m in first] == [
            "serverContent.modelTurn",
            "serverContent.modelTurn",
            "serverContent.modelTurn",
            "serverContent.generationComplete",
            "serverContent.turnComplete",
        ]
        assert text_of(first) == "echo #1: hello"
        usage = first[-1]["usageMetadata"]
        assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["responseTokenCount"]
        await client.send(user_text("again"))
        assert text_of(await client.turn()) == "echo #2: again"
        assert server.log.answered() == ["hello", "again"]
        assert [t.reply_text for t in server.log.turns] == ["echo #1: hello", "echo #2: again"]


async def test_chunk_pacing_and_latency_use_the_trio_clock(autojump_clock: trio.abc.Clock) -> None:
    async with (
        fake(chunks=4, chunk_delay=0.25, response_latency=1.0) as server,
        connect(server) as client,
    ):
        await session_ready(client)
        await client.send(user_text("hello there"))
        times = []
        for _ in range(4):
            await client.recv()
            times.append(trio.current_time())
        assert times == pytest.approx([1.0, 1.25, 1.5, 1.75])


async def test_client_content_without_turn_complete_only_accumulates() -> None:
    async with fake() as server, connect(server) as client:
        await session_ready(client)
        await client.send(user_text("one", turn_complete=False))
        await client.send(user_text("two", turn_complete=False))
        with trio.move_on_after(0.05):
            await client.recv()
            raise AssertionError("the model answered without turnComplete")
        await client.send({"clientContent": {"turnComplete": True}})
        assert text_of(await client.turn()) == "echo #1: one two"


async def test_seeded_model_turns_answer_earlier_input() -> None:
    async with fake() as server, connect(server) as client:
        await session_ready(client)
        await client.send(
            {
                "clientContent": {
                    "turns": [
                        {"role": "user", "parts": [{"text": "old question"}]},
                        {"role": "model", "parts": [{"text": "old answer"}]},
                        {"role": "user", "parts": [{"text": "new"}]},
                    ],
                    "turnComplete": True,
                }
            }
        )
        # The seeded model turn counts, so a restored conversation keeps counting on.
        assert text_of(await client.turn()) == "echo #2: new"


async def test_initial_history_is_consumed_without_a_model_call() -> None:
    async with fake() as server, connect(server) as client:
        await session_ready(
            client, text_setup(historyConfig={"initialHistoryInClientContent": True})
        )
        await client.send(
            {
                "clientContent": {
                    "turns": [
                        {"role": "user", "parts": [{"text": "q"}]},
                        {"role": "model", "parts": [{"text": "a"}]},
                    ],
                    "turnComplete": True,
                }
            }
        )
        await client.send({"realtimeInput": {"text": "now"}})
        # No model call for the seeded history, but its model turn counts.
        assert text_of(await client.turn()) == "echo #2: now"
        assert [e["role"] for e in _history(server)][:3] == ["user", "model", "user"]


def _history(server: Any) -> list[dict[str, Any]]:
    return [entry.content for entry in server.sessions["session-1"].state.history]


async def test_realtime_text_starts_a_turn() -> None:
    async with fake() as server, connect(server) as client:
        await session_ready(client)
        await client.send({"realtime_input": {"text": "typed"}})
        assert text_of(await client.turn()) == "echo #1: typed"
        assert server.log.turns[0].trigger == "realtimeInput.text"


async def test_audio_modality_streams_pcm_and_output_transcription() -> None:
    setup = audio_setup(outputAudioTranscription={})
    async with fake(chunks=2, audio_chunk_seconds=0.05) as server, connect(server) as client:
        await session_ready(client, setup)
        await client.send(user_text("hi"))
        messages = await client.turn()
        assert [kind_of(m) for m in messages] == [
            "serverContent.modelTurn",
            "serverContent.outputTranscription",
            "serverContent.modelTurn",
            "serverContent.outputTranscription",
            "serverContent.generationComplete",
            "serverContent.turnComplete",
        ]
        blob = messages[0]["serverContent"]["modelTurn"]["parts"][0]["inlineData"]
        assert blob["mimeType"] == "audio/pcm;rate=24000"
        assert len(base64.b64decode(blob["data"])) == 2 * 1200
        assert transcript_of(messages) == "echo #1: hi"
        assert messages[-1]["usageMetadata"]["responseTokensDetails"] == [
            {"modality": "AUDIO", "tokenCount": 4}
        ]


async def test_audio_without_output_transcription_has_no_transcripts() -> None:
    async with fake() as server, connect(server) as client:
        await session_ready(client, audio_setup())
        await client.send(user_text("hi"))
        assert "outputTranscription" not in json.dumps(await client.turn())


async def test_audio_input_is_transcribed_and_answered_at_audio_stream_end(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with fake() as server, connect(server) as client:
        await session_ready(
            client, audio_setup(inputAudioTranscription={}, outputAudioTranscription={})
        )
        for _ in range(6):
            await client.send(audio_chunk(0.1, urlsafe=True))
            await trio.sleep(0.1)
        await client.send(audio_chunk(0.1, loud=False))
        await client.send({"realtime_input": {"audioStreamEnd": True}})
        messages = await client.turn()
        assert messages[0] == {"serverContent": {"inputTranscription": {"text": "<audio 0.60s>"}}}
        assert transcript_of(messages) == "echo #1: <audio 0.60s>"
        assert server.log.turns[0].trigger == "audio"
        assert trio.current_time() == pytest.approx(0.6)  # audioStreamEnd, not the silence gap


async def test_a_silence_gap_ends_the_user_turn(autojump_clock: trio.abc.Clock) -> None:
    async with fake(silence_gap=0.8) as server, connect(server) as client:
        await session_ready(client, audio_setup(inputAudioTranscription={}))
        await client.send(audio_chunk(0.2))
        for _ in range(5):  # silence keeps streaming: it must not extend the turn
            await trio.sleep(0.1)
            await client.send(audio_chunk(0.1, loud=False))
        messages = await client.turn()
        assert transcript_of(messages, "inputTranscription") == "<audio 0.20s>"
        assert server.log.turns[0].started_at == pytest.approx(0.8)


async def test_silence_duration_ms_from_the_setup_overrides_the_gap(
    autojump_clock: trio.abc.Clock,
) -> None:
    setup = audio_setup(
        realtimeInputConfig={"automaticActivityDetection": {"silenceDurationMs": 200}}
    )
    async with fake(silence_gap=5) as server, connect(server) as client:
        await session_ready(client, setup)
        await client.send(audio_chunk(0.1))
        await client.turn()
        assert server.log.turns[0].started_at == pytest.approx(0.2)


async def test_only_silence_is_never_a_turn(autojump_clock: trio.abc.Clock) -> None:
    async with fake() as server, connect(server) as client:
        await session_ready(client, audio_setup())
        for _ in range(10):
            await client.send(audio_chunk(0.1, loud=False))
            await trio.sleep(0.1)
        await client.send({"realtimeInput": {"audioStreamEnd": True}})
        await trio.sleep(2)
        assert server.log.turns == []


async def test_manual_activity_detection(autojump_clock: trio.abc.Clock) -> None:
    setup = audio_setup(
        inputAudioTranscription={},
        realtimeInputConfig={"automaticActivityDetection": {"disabled": True}},
    )
    async with fake() as server, connect(server) as client:
        await session_ready(client, setup)
        await client.send(audio_chunk(0.3))  # outside an activity: ignored
        await client.send({"realtimeInput": {"activityStart": {}}})
        await client.send(audio_chunk(0.2, loud=False))  # manual: all audio counts
        await client.send(audio_chunk(0.3))
        await trio.sleep(3)  # no silence gap in manual mode
        assert server.log.turns == []
        await client.send({"realtimeInput": {"activityEnd": {}}})
        messages = await client.turn()
        assert transcript_of(messages, "inputTranscription") == "<audio 0.50s>"


async def test_activity_signals_need_manual_detection() -> None:
    async with fake() as server, connect(server) as client:
        await session_ready(client, audio_setup())
        await client.send({"realtimeInput": {"activityStart": {}}})
        assert await client.closed() == (1007, "Request contains an invalid argument.")


async def test_video_frames_join_the_context() -> None:
    async with fake() as server, connect(server) as client:
        await session_ready(client)
        await client.send(
            {"realtimeInput": {"video": {"mimeType": "image/jpeg", "data": "/9j/4A=="}}}
        )
        await client.send(user_text("what is this"))
        usage = (await client.turn())[-1]["usageMetadata"]
        assert {"modality": "IMAGE", "tokenCount": 258} in usage["promptTokensDetails"]
        assert server.sessions["session-1"].has_video


async def test_a_custom_responder_sees_the_context_and_scripts_steps(
    autojump_clock: trio.abc.Clock,
) -> None:
    seen: list[TurnContext] = []

    async def responder(ctx: TurnContext) -> Any:
        seen.append(ctx)
        await trio.sleep(0.5)
        return [
            "Hi",
            Pause(1.0),
            SendPart({"executableCode": {"code": "print(1)", "language": "PYTHON"}}),
            SendMessage({"voiceActivity": {"type": "ACTIVITY_END"}}),
            Say("!"),
        ]

    setup = text_setup(
        systemInstruction={"parts": [{"text": "terse"}]},
        tools=[{"functionDeclarations": [{"name": "f"}]}],
    )
    async with fake(responder=responder, chunks=1) as server, connect(server) as client:
        await session_ready(client, setup)
        await client.send(user_text("question"))
        messages = await client.turn()
        assert [kind_of(m) for m in messages] == [
            "serverContent.modelTurn",
            "serverContent.modelTurn",
            "voiceActivity",
            "serverContent.modelTurn",
            "serverContent.generationComplete",
            "serverContent.turnComplete",
        ]
        assert trio.current_time() == pytest.approx(1.5)
        assert server.log.turns[0].reply_text == "Hi!"
    ctx = seen[0]
    assert (ctx.turn, ctx.user_text, ctx.modality, ctx.trigger) == (
        1,
        "question",
        "TEXT",
        "clientContent",
    )
    assert set(ctx.tools) == {"f"}
    assert ctx.config["systemInstruction"] == {"parts": [{"text": "terse"}]}
    assert ctx.history[-1] == {"role": "user", "parts": [{"text": "question"}]}
    assert ctx.session_id == "session-1" and ctx.connection == 1


async def test_an_empty_reply_is_an_empty_turn() -> None:
    async with fake(responder=lambda ctx: None) as server, connect(server) as client:
        await session_ready(client)
        await client.send(user_text("x"))
        assert [kind_of(m) for m in await client.turn()] == [
            "serverContent.generationComplete",
            "serverContent.turnComplete",
        ]


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (
            CloseConnection(1011, "Internal error encountered."),
            (1011, "Internal error encountered."),
        ),
        (CloseConnection(1008, "x" * 300), (1008, "x" * 123)),
        (DropConnection(), (1006, "")),
    ],
)
async def test_scripted_errors(step: Any, expected: tuple[int, str]) -> None:
    async with fake(responder=lambda ctx: ["partial", step]) as server, connect(server) as client:
        await session_ready(client)
        await client.send(user_text("x"))
        assert await client.closed() == expected
        await server.log.wait_for(lambda: server.log.turns[0].outcome is not None)
        assert server.log.turns[0].outcome == "cut"
        assert server.log.connection(1).cause == "responder"


@pytest.mark.parametrize(
    "bad", [lambda ctx: 1 / 0, lambda ctx: 42, lambda ctx: CallTool("undeclared")]
)
async def test_a_failing_responder_closes_1011_and_is_logged(bad: Any) -> None:
    from liveactors.testing import open_fake_server

    async with (
        open_fake_server(listen=False, model_profile="2.5", responder=bad) as server,
        connect(server) as client,
    ):
        await session_ready(client)
        await client.send(user_text("x"))
        assert await client.closed() == (1011, "Internal error encountered.")
        assert len(server.log.errors) == 1
        assert server.log.connection(1).cause == "error"


async def test_context_update_changes_tools_and_instructions() -> None:
    seen: list[TurnContext] = []
    async with fake(responder=lambda ctx: seen.append(ctx)) as server, connect(server) as client:
        await session_ready(client, text_setup(tools=[{"functionDeclarations": [{"name": "a"}]}]))
        await client.send(
            {
                "contextUpdate": {
                    "systemInstruction": {"parts": [{"text": "German"}]},
                    "tools": {"tools": []},
                }
            }
        )
        await client.send(user_text("x"))
        await client.turn()
    assert seen[0].tools == {}
    assert seen[0].config["systemInstruction"]["parts"][0]["text"] == "German"
    assert seen[0].config["model"] == TEXT_MODEL


async def test_seeded_user_turns_are_history_not_input() -> None:
    async with fake() as server, connect(server) as client:
        await session_ready(
            client, text_setup(historyConfig={"initialHistoryInClientContent": True})
        )
        await client.send(user_text("My name is Ada."))  # the seed ends: no model call
        await client.send(user_text("one"))
        assert text_of(await client.turn()) == "echo #1: one"
        assert server.log.answer_counts() == {"one": 1}
