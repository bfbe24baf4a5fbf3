"""Setup and the close paths around it."""

from __future__ import annotations

import json

import pytest
import trio

from .conftest import (
    AUDIO_MODEL,
    TEXT_MODEL,
    connect,
    fake,
    session_ready,
    text_of,
    text_setup,
    user_text,
)


async def test_setup_complete_carries_a_session_id_and_frames_are_binary() -> None:
    async with fake() as server, connect(server) as client:
        reply = await client.setup()
        assert reply == {"setupComplete": {"sessionId": "session-1"}}
        assert client.frame_types == [bytes]
        assert server.log.last_connection.session == "session-1"


async def test_text_frames_on_request() -> None:
    async with fake(frame_type="text") as server, connect(server) as client:
        await session_ready(client)
        assert client.frame_types == [str]


async def test_the_sdk_shape_of_setup_is_accepted() -> None:
    # What google-genai 3.4 literally sends: snake_case inside.
    setup = {
        "setup": {
            "model": TEXT_MODEL,
            "generationConfig": {
                "responseModalities": ["TEXT"],
                "topK": 40.0,
                "speechConfig": {
                    "voice_config": {"prebuilt_voice_config": {"voice_name": "Kore"}},
                    "language_code": "en-US",
                },
                "thinkingConfig": {"include_thoughts": False, "thinking_budget": 0},
            },
            "systemInstruction": {"parts": [{"text": "Be terse."}], "role": "user"},
            "tools": [
                {"googleSearch": {}},
                {"functionDeclarations": [{"name": "f", "behavior": "NON_BLOCKING"}]},
            ],
            "sessionResumption": {},
            "inputAudioTranscription": {},
            "realtimeInputConfig": {
                "automatic_activity_detection": {
                    "disabled": False,
                    "start_of_speech_sensitivity": "START_SENSITIVITY_LOW",
                },
                "activity_handling": "NO_INTERRUPTION",
                "turn_coverage": "TURN_INCLUDES_ALL_INPUT",
            },
            "contextWindowCompression": {
                "trigger_tokens": 25600,
                "sliding_window": {"target_tokens": 12800},
            },
            "proactivity": {"proactive_audio": True},
            "historyConfig": {"initial_history_in_client_content": True},
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
            "labels": {"k": "v"},
        }
    }
    async with fake() as server, connect(server) as client:
        await session_ready(client, setup)
        logged = server.log.client_messages(kind="setup")[0].body
        assert logged["realtimeInputConfig"]["automaticActivityDetection"][
            "startOfSpeechSensitivity"
        ] == ("START_SENSITIVITY_LOW")


@pytest.mark.parametrize(
    ("first", "code", "reason"),
    [
        (user_text("hi"), 1007, "Request contains an invalid argument."),
        (
            {"setup": {"model": TEXT_MODEL, "bogus": 1}},
            1007,
            "Invalid JSON payload received. Unknown name \"bogus\" at 'setup': Cannot find field.",
        ),
        ("not json", 1007, "Invalid JSON payload received. Unexpected token."),
        ({"setup": {}}, 1007, "Request contains an invalid argument."),
        (
            {"setup": {"model": "models/no-such-model-x"}},
            1008,
            "models/no-such-model-x is not found for API version v1beta, "
            "or is not supported for bidiGenerateContent",
        ),
        (
            {"setup": {"model": "gemini-test-text"}},  # no "models/"
            1008,
            "gemini-test-text is not found for API version v1beta, "
            "or is not supported for bidiGenerateContent",
        ),
        (
            {"setup": {"model": AUDIO_MODEL, "generationConfig": {"responseModalities": ["TEXT"]}}},
            1007,
            "The requested combination of response modalities (TEXT) is not supported by the model",
        ),
        (
            {
                "setup": {
                    "model": TEXT_MODEL,
                    "generationConfig": {"responseModalities": ["TEXT", "AUDIO"]},
                }
            },
            1007,
            "The requested combination of response modalities (TEXT, AUDIO) "
            "is not supported by the model",
        ),
        (
            {"setup": {"model": TEXT_MODEL, "sessionResumption": {"transparent": True}}},
            1007,
            'Invalid JSON payload received. Unknown name "transparent" at '
            "'setup.session_resumption': Cannot find field.",
        ),
    ],
)
async def test_bad_first_messages(first: object, code: int, reason: str) -> None:
    async with fake(models=None if code != 1008 else ["gemini-test-text"]) as server:
        async with connect(server) as client:
            await client.send(first if isinstance(first, str) else json.dumps(first))
            assert await client.closed() == (code, reason)
        record = server.log.last_connection
        assert (record.close_code, record.close_reason) == (code, reason)
        assert record.session is None


async def test_served_models_are_configurable() -> None:
    async with fake(models=["gemini-test-text", "models/gemini-3.8-live"]) as server:
        async with connect(server) as client:
            await session_ready(client)
            assert server.log.last_connection.session == "session-1"
        async with connect(server) as client:
            await session_ready(client, {"setup": {"model": "models/gemini-3.8-live"}})
        async with connect(server) as client:
            await client.send({"setup": {"model": "models/gemini-3.1-flash-live-preview"}})
            assert (await client.closed())[0] == 1008


async def test_a_second_setup_closes_1007() -> None:
    async with fake() as server, connect(server) as client:
        await session_ready(client)
        await client.send(text_setup())
        assert await client.closed() == (1007, "Request contains an invalid argument.")
        assert server.log.client_kinds(1) == ["setup", "setup"]


async def test_unknown_field_later_closes_1007_with_the_path() -> None:
    async with fake() as server, connect(server) as client:
        await session_ready(client)
        await client.send(
            {"realtime_input": {"audio": {"data": "AAAA", "mimeType": "audio/pcm", "rate": 1}}}
        )
        code, reason = await client.closed()
        assert code == 1007
        assert (
            reason == 'Invalid JSON payload received. Unknown name "rate" at '
            "'realtime_input.audio': Cannot find field."
        )
        assert server.log.client_messages(1)[-1].kind == "invalid"


async def test_input_sent_before_setup_complete_is_queued_by_default(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with fake(setup_latency=0.5) as server, connect(server) as client:
        await client.send(text_setup())
        await client.send(user_text("early"))
        assert "setupComplete" in await client.recv()
        assert trio.current_time() == pytest.approx(0.5)
        messages = await client.turn()
        assert text_of(messages) == "echo #1: early"
        assert [m.index for m in server.log.client_messages(1)] == [0, 1]


async def test_input_before_setup_complete_is_refused_when_strict(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with (
        fake(setup_latency=0.5, strict_before_setup=True) as server,
        connect(server) as client,
    ):
        await client.send(text_setup())
        await client.send(user_text("early"))
        assert await client.closed() == (1007, "Request contains an invalid argument.")
        assert server.log.client_kinds(1) == ["setup", "early"]


async def test_client_close_is_recorded() -> None:
    async with fake() as server:
        async with connect(server) as client:
            await session_ready(client)
            await client.ws.aclose(4000, "bye")
        await server.log.wait_for(lambda: not server.log.connection(1).open)
        record = server.log.connection(1)
        assert (record.close_code, record.close_reason, record.cause) == (4000, "bye", "client")


async def test_bad_base64_closes_1007() -> None:
    async with fake() as server, connect(server) as client:
        await session_ready(client)
        await client.send({"realtimeInput": {"audio": {"mimeType": "audio/pcm", "data": "@@@@"}}})
        code, reason = await client.closed()
        assert code == 1007
        assert reason.startswith("Invalid value at 'realtime_input.audio.data' (TYPE_BYTES)")


async def test_a_message_over_the_size_limit_closes_1009() -> None:
    async with fake(max_message_size=1000) as server, connect(server) as client:
        await session_ready(client)
        await client.send(user_text("x" * 2000))
        assert (await client.closed())[0] == 1009
        await server.log.wait_for(lambda: not server.log.connection(1).open)
        assert server.log.connection(1).cause == "protocol"


async def test_a_client_that_vanishes_is_a_client_drop() -> None:
    async with fake() as server, connect(server) as client:
        await session_ready(client)
        await client.ws._stream.aclose()  # no close frame
        await server.log.wait_for(lambda: not server.log.connection(1).open)
        record = server.log.connection(1)
        assert (record.close_code, record.cause) == (1006, "client_drop")
