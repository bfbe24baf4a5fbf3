"""The outside check: the real google-genai SDK, over TLS, against the fake server.

Each conversation runs the SDK on asyncio in a worker thread while the fake server runs in the
test's trio loop; the SDK reaches it through ``http_options.base_url`` and trusts its throwaway
certificate through ``async_client_args={"ssl": ctx}``. The SDK sends snake_case keys inside
messages, URL-safe base64, API version v1 and a ``//ws/`` path: all of it must just work.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import trio
from google import genai
from google.genai import errors, types

from liveactors.testing import FakeServer

from .conftest import fake, pcm

T = TypeVar("T")
TEXT_MODEL = "gemini-live-2.5-flash-preview"
AUDIO_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"


@asynccontextmanager
async def tls_server(**options: Any) -> AsyncIterator[FakeServer]:
    async with fake(listen=True, tls=True, **options) as server:
        yield server


async def in_sdk_thread(
    server: FakeServer, conversation: Callable[[genai.Client], Awaitable[T]]
) -> T:
    """Run ``conversation(client)`` on asyncio in a worker thread."""
    context = server.client_ssl_context
    assert context is not None
    url = server.url.replace("wss://", "https://")

    def run() -> T:
        async def main() -> T:
            client = genai.Client(
                api_key="test-key",
                http_options=types.HttpOptions(base_url=url, async_client_args={"ssl": context}),
            )
            return await conversation(client)

        return asyncio.run(main())

    return await trio.to_thread.run_sync(run)


async def test_text_turn() -> None:
    async def conversation(client: genai.Client) -> tuple[str | None, str, bool]:
        config = types.LiveConnectConfig(response_modalities=[types.Modality.TEXT])
        async with client.aio.live.connect(model=TEXT_MODEL, config=config) as session:
            await session.send_client_content(
                turns=types.Content(role="user", parts=[types.Part(text="Hello")])
            )
            text, generation_complete = "", False
            async for message in session.receive():
                text += message.text or ""
                content = message.server_content
                generation_complete |= bool(content and content.generation_complete)
            return session.session_id, text, generation_complete

    async with tls_server() as server:
        session_id, text, generation_complete = await in_sdk_thread(server, conversation)
        assert (session_id, text, generation_complete) == ("session-1", "echo #1: Hello", True)
        record = server.log.connection(1)
        assert (record.api_version, record.close_code) == ("v1", 1000)
        assert server.log.client_kinds(1) == ["setup", "clientContent"]


async def test_audio_turn_with_transcription() -> None:
    async def conversation(client: genai.Client) -> tuple[str, int, str]:
        config = types.LiveConnectConfig(
            response_modalities=[types.Modality.AUDIO],
            input_audio_transcription=types.AudioTranscriptionConfig(),
            output_audio_transcription=types.AudioTranscriptionConfig(),
        )
        async with client.aio.live.connect(model=AUDIO_MODEL, config=config) as session:
            for _ in range(5):
                await session.send_realtime_input(
                    audio=types.Blob(data=pcm(0.1), mime_type="audio/pcm;rate=16000")
                )
            await session.send_realtime_input(audio_stream_end=True)
            heard, audio, said = "", 0, ""
            async for message in session.receive():
                content = message.server_content
                if content and content.input_transcription:
                    heard += content.input_transcription.text or ""
                if content and content.output_transcription:
                    said += content.output_transcription.text or ""
                audio += len(message.data or b"")
            return heard, audio, said

    async with tls_server() as server:
        heard, audio, said = await in_sdk_thread(server, conversation)
        assert heard == "<audio 0.50s>"
        assert said == "echo #1: <audio 0.50s>"
        assert audio == 2 * 2 * 2400  # two chunks of 0.1 s at 24 kHz, 16-bit
        assert server.log.client_kinds(1)[-1] == "realtimeInput.audioStreamEnd"


async def test_tool_call_round_trip() -> None:
    async def conversation(client: genai.Client) -> tuple[str, dict[str, Any], str]:
        tool = types.Tool(
            function_declarations=[
                types.FunctionDeclaration(
                    name="get_weather",
                    description="Weather for a city",
                    parameters=types.Schema(
                        type=types.Type.OBJECT,
                        properties={"city_name": types.Schema(type=types.Type.STRING)},
                    ),
                )
            ]
        )
        config = types.LiveConnectConfig(response_modalities=[types.Modality.TEXT], tools=[tool])
        async with client.aio.live.connect(model=TEXT_MODEL, config=config) as session:
            await session.send_realtime_input(text='call get_weather {"city_name": "Paris"}')
            call = None
            async for message in session.receive():
                if message.tool_call:
                    call = message.tool_call.function_calls[0]  # type: ignore[index]
                    break
            assert call is not None and call.id and call.name
            await session.send_tool_response(
                function_responses=[
                    types.FunctionResponse(
                        id=call.id, name=call.name, response={"output": {"temp_c": 18}}
                    )
                ]
            )
            text = ""
            async for message in session.receive():
                text += message.text or ""
            return call.name, dict(call.args or {}), text

    async with tls_server() as server:
        name, args, text = await in_sdk_thread(server, conversation)
        assert (name, args) == ("get_weather", {"city_name": "Paris"})
        assert text == 'echo #1: get_weather -> {"output":{"temp_c":18}}'
        setup = server.log.client_messages(1, kind="setup")[0].body
        properties = setup["tools"][0]["functionDeclarations"][0]["parameters"]["properties"]
        assert list(properties) == ["city_name"]  # a Struct-like map: names untouched
        assert server.log.answered() == ['call get_weather {"city_name": "Paris"}']


async def test_resumption_carries_the_turn_counter_over() -> None:
    async def ask(session: Any, text: str) -> tuple[str, str | None]:
        await session.send_client_content(
            turns=types.Content(role="user", parts=[types.Part(text=text)])
        )
        reply = ""
        async for message in session.receive():
            reply += message.text or ""
        # The fresh handle follows turnComplete.
        handle = None
        while handle is None:
            message = await anext(aiter(session.receive()))
            update = message.session_resumption_update
            if update and update.resumable and update.new_handle:
                handle = update.new_handle
        return reply, handle

    async def conversation(client: genai.Client) -> tuple[str, str]:
        config = types.LiveConnectConfig(
            response_modalities=[types.Modality.TEXT],
            session_resumption=types.SessionResumptionConfig(),
        )
        async with client.aio.live.connect(model=TEXT_MODEL, config=config) as session:
            first, handle = await ask(session, "first")
        config = types.LiveConnectConfig(
            response_modalities=[types.Modality.TEXT],
            session_resumption=types.SessionResumptionConfig(handle=handle),
        )
        async with client.aio.live.connect(model=TEXT_MODEL, config=config) as session:
            second, _ = await ask(session, "second")
        return first, second

    async with tls_server() as server:
        first, second = await in_sdk_thread(server, conversation)
        assert (first, second) == ("echo #1: first", "echo #2: second")
        assert server.log.connection(2).resumed_from is not None
        assert server.log.connection(2).session == server.log.connection(1).session


async def test_go_away_before_the_1011_close() -> None:
    async def conversation(client: genai.Client) -> tuple[str | None, int | None, str | None]:
        config = types.LiveConnectConfig(response_modalities=[types.Modality.TEXT])
        async with client.aio.live.connect(model=TEXT_MODEL, config=config) as session:
            time_left = None
            try:
                while True:
                    async for message in session.receive():
                        if message.go_away:
                            time_left = message.go_away.time_left
            except errors.APIError as exc:
                return time_left, exc.code, exc.details
        return time_left, None, None

    async with tls_server(connection_lifetime=1.0, goaway_before=0.5) as server:
        time_left, code, reason = await in_sdk_thread(server, conversation)
        assert time_left == "0.500s"
        assert code == 1011
        assert reason == "Deadline expired before operation could complete."
        assert server.log.server_kinds(1) == ["setupComplete", "goAway"]


def test_the_ssl_context_is_what_the_sdk_uses() -> None:
    # Guards the plumbing the tests above rely on (google/genai/_api_client.py).
    context = ssl.create_default_context()
    client = genai.Client(
        api_key="k",
        http_options=types.HttpOptions(base_url="https://x", async_client_args={"ssl": context}),
    )
    assert client._api_client._websocket_ssl_ctx["ssl"] is context


def test_every_setup_field_the_sdk_sends_is_accepted() -> None:
    """A kitchen-sink ``LiveConnectConfig``, through the SDK's own converters, passes the checks."""
    import json

    from google.genai import _common
    from google.genai import _live_converters as converters

    from liveactors.testing import ServerOptions
    from liveactors.testing._schema import normalise
    from liveactors.testing._setup import read_setup

    def get_weather(city: str, days: int = 1) -> dict[str, str]:
        """Weather for a city."""
        return {}

    config = types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        temperature=0.7,
        top_p=0.9,
        top_k=40,
        max_output_tokens=256,
        seed=3,
        media_resolution=types.MediaResolution.MEDIA_RESOLUTION_LOW,
        speech_config=types.SpeechConfig(
            voice_config=types.VoiceConfig(
                prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name="Kore")
            ),
            language_code="en-US",
        ),
        thinking_config=types.ThinkingConfig(include_thoughts=False, thinking_budget=0),
        enable_affective_dialog=True,
        system_instruction="Be terse.",
        tools=[
            types.Tool(
                function_declarations=[
                    types.FunctionDeclaration(
                        name="book",
                        behavior=types.Behavior.NON_BLOCKING,
                        parameters=types.Schema(
                            type=types.Type.OBJECT,
                            properties={
                                "when_iso": types.Schema(type=types.Type.STRING, format="date-time")
                            },
                            required=["when_iso"],
                        ),
                    )
                ]
            ),
            types.Tool(google_search=types.GoogleSearch()),
            types.Tool(code_execution=types.ToolCodeExecution()),
            types.Tool(url_context=types.UrlContext()),
            get_weather,
        ],
        session_resumption=types.SessionResumptionConfig(handle="h"),
        input_audio_transcription=types.AudioTranscriptionConfig(),
        output_audio_transcription=types.AudioTranscriptionConfig(),
        realtime_input_config=types.RealtimeInputConfig(
            automatic_activity_detection=types.AutomaticActivityDetection(
                disabled=False,
                start_of_speech_sensitivity=types.StartSensitivity.START_SENSITIVITY_LOW,
                end_of_speech_sensitivity=types.EndSensitivity.END_SENSITIVITY_LOW,
                prefix_padding_ms=20,
                silence_duration_ms=300,
            ),
            activity_handling=types.ActivityHandling.NO_INTERRUPTION,
            turn_coverage=types.TurnCoverage.TURN_INCLUDES_ALL_INPUT,
        ),
        context_window_compression=types.ContextWindowCompressionConfig(
            trigger_tokens=25600, sliding_window=types.SlidingWindow(target_tokens=12800)
        ),
        proactivity=types.ProactivityConfig(proactive_audio=True),
        history_config=types.HistoryConfig(initial_history_in_client_content=True),
        safety_settings=[
            types.SafetySetting(
                category=types.HarmCategory.HARM_CATEGORY_HARASSMENT,
                threshold=types.HarmBlockThreshold.BLOCK_NONE,
            )
        ],
        labels={"team_name": "voice"},
    )
    client = genai.Client(api_key="k")
    parameters = types.LiveConnectParameters(model="models/" + AUDIO_MODEL, config=config)
    request = _common.convert_to_dict(
        converters._LiveConnectParameters_to_mldev(
            api_client=client._api_client, from_object=parameters.model_dump(exclude_none=True)
        )
    )
    del request["config"]
    request = _common.encode_unserializable_types(request)
    wire = json.loads(json.dumps(request))
    _, message = normalise(wire)
    plan = read_setup(
        message["setup"], ServerOptions(), model_known=lambda m: True, api_version="v1"
    )
    assert (plan.modality, plan.interrupts, plan.silence_gap) == ("AUDIO", False, 0.3)
    assert set(plan.tools) == {"book", "get_weather"}
    assert plan.compression == (25600, 12800)
    assert plan.handle == "h" and plan.initial_history
    assert message["setup"]["labels"] == {"team_name": "voice"}
