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
from google.oauth2.credentials import Credentials

from liveactors.testing import FakeServer

from .conftest import fake, pcm

T = TypeVar("T")
#: The current model (the server's default profile).
MODEL = "gemini-3.8-live"
#: A name the model table does not know: on profile "2.5" it answers in TEXT.
TEXT_MODEL = "gemini-test-text"
AUDIO_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
#: The 3.8 answer: audio, its text in the output transcription.
SPOKEN = types.LiveConnectConfig(output_audio_transcription=types.AudioTranscriptionConfig())


@asynccontextmanager
async def tls_server(**options: Any) -> AsyncIterator[FakeServer]:
    options.setdefault("model_profile", "3.8")
    async with fake(listen=True, tls=True, **options) as server:
        yield server


def _developer_client(url: str, context: ssl.SSLContext) -> genai.Client:
    return genai.Client(
        api_key="test-key",
        http_options=types.HttpOptions(base_url=url, async_client_args={"ssl": context}),
    )


def _vertex_client(url: str, context: ssl.SSLContext) -> genai.Client:
    # An OAuth token that needs no refresh: the SDK sends it as "Authorization: Bearer".
    return genai.Client(
        vertexai=True,
        project="p",
        location="us-central1",
        credentials=Credentials(token="test-key"),  # type: ignore[no-untyped-call]
        http_options=types.HttpOptions(base_url=url, async_client_args={"ssl": context}),
    )


def _express_client(url: str, context: ssl.SSLContext) -> genai.Client:
    # Vertex AI express mode: an API key on the Vertex path.
    return genai.Client(
        vertexai=True,
        api_key="test-key",
        http_options=types.HttpOptions(base_url=url, async_client_args={"ssl": context}),
    )


async def in_sdk_thread(
    server: FakeServer,
    conversation: Callable[[genai.Client], Awaitable[T]],
    client: Callable[[str, ssl.SSLContext], genai.Client] = _developer_client,
) -> T:
    """Run ``conversation(client)`` on asyncio in a worker thread."""
    context = server.client_ssl_context
    assert context is not None
    url = server.url.replace("wss://", "https://")

    def run() -> T:
        async def main() -> T:
            return await conversation(client(url, context))

        return asyncio.run(main())

    return await trio.to_thread.run_sync(run)


class Turn:
    """What one ``session.receive()`` turn brought."""

    def __init__(self) -> None:
        self.heard = ""
        self.said = ""
        self.text = ""
        self.audio = 0
        self.parts_per_message: list[int] = []
        self.generation_complete = False
        self.usage: types.UsageMetadata | None = None
        self.calls: list[types.FunctionCall] = []


async def receive_turn(session: Any) -> Turn:
    turn = Turn()
    async for message in session.receive():
        content = message.server_content
        if message.tool_call:
            turn.calls.extend(message.tool_call.function_calls or ())
        if message.usage_metadata:
            turn.usage = message.usage_metadata
        if content is None:
            continue
        if content.input_transcription:
            turn.heard += content.input_transcription.text or ""
        if content.output_transcription:
            turn.said += content.output_transcription.text or ""
        if content.model_turn:
            parts = content.model_turn.parts or []
            turn.parts_per_message.append(len(parts))
            for part in parts:
                turn.text += part.text or ""
                turn.audio += len(part.inline_data.data or b"") if part.inline_data else 0
        turn.generation_complete |= bool(content.generation_complete)
    return turn


async def test_text_by_transcription_on_the_current_model() -> None:
    async def conversation(client: genai.Client) -> tuple[str | None, Turn]:
        async with client.aio.live.connect(model=MODEL, config=SPOKEN) as session:
            await session.send_client_content(
                turns=types.Content(role="user", parts=[types.Part(text="Hello")])
            )
            return session.session_id, await receive_turn(session)

    async with tls_server() as server:
        session_id, turn = await in_sdk_thread(server, conversation)
        assert (session_id, turn.said, turn.text) == ("session-1", "echo #1: Hello", "")
        # Speech: three 0.1 s parts of 24 kHz 16-bit PCM per message, two messages.
        assert turn.parts_per_message == [3, 3]
        assert turn.audio == 2 * 3 * 2 * 2400
        assert turn.generation_complete
        assert turn.usage is not None and turn.usage.response_token_count
        record = server.log.connection(1)
        assert (record.api_version, record.close_code, record.model) == ("v1", 1000, MODEL)
        assert server.log.client_kinds(1) == ["setup", "clientContent"]


async def test_the_sdk_is_refused_text_on_the_current_model() -> None:
    async def conversation(client: genai.Client) -> int | None:
        config = types.LiveConnectConfig(response_modalities=[types.Modality.TEXT])
        try:
            async with client.aio.live.connect(model=MODEL, config=config):
                pass
        except errors.APIError as exc:
            return exc.code
        return None

    async with tls_server() as server:
        assert await in_sdk_thread(server, conversation) == 1007


async def test_text_turn_on_the_old_profile() -> None:
    async def conversation(client: genai.Client) -> Turn:
        config = types.LiveConnectConfig(response_modalities=[types.Modality.TEXT])
        async with client.aio.live.connect(model=TEXT_MODEL, config=config) as session:
            await session.send_client_content(
                turns=types.Content(role="user", parts=[types.Part(text="Hello")])
            )
            return await receive_turn(session)

    async with tls_server(model_profile="2.5") as server:
        turn = await in_sdk_thread(server, conversation)
        assert (turn.text, turn.generation_complete) == ("echo #1: Hello", True)


async def test_audio_in_with_transcription() -> None:
    async def conversation(client: genai.Client) -> Turn:
        config = types.LiveConnectConfig(
            input_audio_transcription=types.AudioTranscriptionConfig(),
            output_audio_transcription=types.AudioTranscriptionConfig(),
        )
        async with client.aio.live.connect(model=MODEL, config=config) as session:
            for _ in range(5):
                await session.send_realtime_input(
                    audio=types.Blob(data=pcm(0.1), mime_type="audio/pcm;rate=16000")
                )
            await session.send_realtime_input(audio_stream_end=True)
            return await receive_turn(session)

    async with tls_server() as server:
        turn = await in_sdk_thread(server, conversation)
        assert turn.heard == "<audio 0.50s>"
        assert turn.said == "echo #1: <audio 0.50s>"
        assert turn.audio == 2 * 3 * 2 * 2400
        assert server.log.client_kinds(1)[-1] == "realtimeInput.audioStreamEnd"


async def test_audio_on_a_2_5_native_audio_model() -> None:
    async def conversation(client: genai.Client) -> Turn:
        config = types.LiveConnectConfig(
            response_modalities=[types.Modality.AUDIO],
            output_audio_transcription=types.AudioTranscriptionConfig(),
        )
        async with client.aio.live.connect(model=AUDIO_MODEL, config=config) as session:
            await session.send_realtime_input(text="hi")
            return await receive_turn(session)

    async with tls_server() as server:
        turn = await in_sdk_thread(server, conversation)
        # The older framing: one audio part per message, transcripts in messages of their own.
        assert (turn.said, turn.parts_per_message) == ("echo #1: hi", [1, 1])


WEATHER = types.Tool(
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


async def test_non_blocking_tool_call_answered_with_scheduling() -> None:
    async def conversation(client: genai.Client) -> tuple[types.FunctionCall, Turn, Turn, Turn]:
        config = SPOKEN.model_copy(update={"tools": [WEATHER]})
        async with client.aio.live.connect(model=MODEL, config=config) as session:
            await session.send_realtime_input(text='call get_weather {"city_name": "Paris"}')
            # NON_BLOCKING by default: the turn completes while the call runs.
            calling = await receive_turn(session)
            (call,) = calling.calls
            assert call.id and call.name
            await session.send_tool_response(
                function_responses=[
                    types.FunctionResponse(
                        id=call.id,
                        name=call.name,
                        response={"output": {"temp_c": 18}},
                        scheduling=types.FunctionResponseScheduling.WHEN_IDLE,
                    )
                ]
            )
            result = await receive_turn(session)
            # SILENT: into the context, no turn; the next question shows the counter.
            await session.send_realtime_input(text='call get_weather {"city_name": "Rome"}')
            second = (await receive_turn(session)).calls[0]
            await session.send_tool_response(
                function_responses=[
                    types.FunctionResponse(
                        id=second.id,
                        name=second.name,
                        response={"output": {"temp_c": 25}},
                        scheduling=types.FunctionResponseScheduling.SILENT,
                    )
                ]
            )
            await session.send_realtime_input(text="thanks")
            after = await receive_turn(session)
            return call, calling, result, after

    async with tls_server() as server:
        call, calling, result, after = await in_sdk_thread(server, conversation)
        assert (call.name, call.args) == ("get_weather", {"city_name": "Paris"})
        assert calling.generation_complete and calling.said == ""
        assert result.said == 'echo #2: get_weather -> {"output":{"temp_c":18}}'
        assert after.said == "echo #4: thanks"
        setup = server.log.client_messages(1, kind="setup")[0].body
        properties = setup["tools"][0]["functionDeclarations"][0]["parameters"]["properties"]
        assert list(properties) == ["city_name"]  # a Struct-like map: names untouched
        responses = server.log.client_messages(1, kind="toolResponse")
        assert [r.body["functionResponses"][0]["scheduling"] for r in responses] == [
            "WHEN_IDLE",
            "SILENT",
        ]


async def _ask(session: Any, text: str) -> tuple[str, str | None]:
    await session.send_client_content(
        turns=types.Content(role="user", parts=[types.Part(text=text)])
    )
    reply = (await receive_turn(session)).said
    # The fresh handle follows turnComplete.
    handle = None
    while handle is None:
        message = await anext(aiter(session.receive()))
        update = message.session_resumption_update
        if update and update.resumable and update.new_handle:
            handle = update.new_handle
    return reply, handle


async def test_resumption_carries_the_turn_counter_over() -> None:
    async def conversation(client: genai.Client) -> tuple[str, str]:
        config = SPOKEN.model_copy(update={"session_resumption": types.SessionResumptionConfig()})
        async with client.aio.live.connect(model=MODEL, config=config) as session:
            first, handle = await _ask(session, "first")
        config = SPOKEN.model_copy(
            update={"session_resumption": types.SessionResumptionConfig(handle=handle)}
        )
        async with client.aio.live.connect(model=MODEL, config=config) as session:
            second, _ = await _ask(session, "second")
        return first, second

    async with tls_server() as server:
        first, second = await in_sdk_thread(server, conversation)
        assert (first, second) == ("echo #1: first", "echo #2: second")
        assert server.log.connection(2).resumed_from is not None
        assert server.log.connection(2).session == server.log.connection(1).session


async def test_go_away_before_the_1011_close() -> None:
    async def conversation(client: genai.Client) -> tuple[str | None, int | None, str | None]:
        async with client.aio.live.connect(model=MODEL, config=SPOKEN) as session:
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


async def test_vertex_with_an_oauth_token() -> None:
    async def conversation(client: genai.Client) -> tuple[Turn, list[int | None]]:
        config = SPOKEN.model_copy(
            update={"session_resumption": types.SessionResumptionConfig(transparent=True)}
        )
        indexes: list[int | None] = []
        async with client.aio.live.connect(model=MODEL, config=config) as session:
            update = (await anext(aiter(session.receive()))).session_resumption_update
            assert update is not None and update.resumable
            indexes.append(update.last_consumed_client_message_index)
            await session.send_client_content(
                turns=types.Content(role="user", parts=[types.Part(text="Hello")])
            )
            turn = await receive_turn(session)
            update = (await anext(aiter(session.receive()))).session_resumption_update
            assert update is not None
            indexes.append(update.last_consumed_client_message_index)
        return turn, indexes

    async with tls_server(vertex=True) as server:
        turn, indexes = await in_sdk_thread(server, conversation, _vertex_client)
        assert turn.said == "echo #1: Hello"
        # Vertex names it candidatesTokenCount; the SDK reads it as response_token_count.
        assert turn.usage is not None and turn.usage.response_token_count
        assert indexes == [None, 1]
        record = server.log.connection(1)
        assert (record.vertex, record.api_version, record.model) == (True, "v1beta1", MODEL)
        setup = server.log.client_messages(1, kind="setup")[0].body
        assert (
            setup["model"] == f"projects/p/locations/us-central1/publishers/google/models/{MODEL}"
        )
        sent = [m.message for m in server.log.server_messages(1, kind="turnComplete")]
        assert "candidatesTokenCount" in sent[0]["usageMetadata"]


async def test_vertex_express_mode() -> None:
    async def conversation(client: genai.Client) -> str:
        async with client.aio.live.connect(model=MODEL, config=SPOKEN) as session:
            await session.send_realtime_input(text="hi")
            return (await receive_turn(session)).said

    async with tls_server(vertex=True) as server:
        assert await in_sdk_thread(server, conversation, _express_client) == "echo #1: hi"
        setup = server.log.client_messages(1, kind="setup")[0].body
        assert setup["model"] == f"publishers/google/models/{MODEL}"


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
    plan = read_setup(message["setup"], ServerOptions(), api_version="v1")
    assert (plan.modality, plan.interrupts, plan.silence_gap) == ("AUDIO", False, 0.3)
    assert set(plan.tools) == {"book", "get_weather"}
    assert plan.compression == (25600, 12800)
    assert plan.handle == "h" and plan.initial_history
    assert message["setup"]["labels"] == {"team_name": "voice"}


async def test_vertex_audio_non_blocking_tools_and_resumption() -> None:
    """The same flows on the Vertex path: speech in (server VAD ends the turn), a NON_BLOCKING
    call answered with a scheduling, and a new connection resuming from the handle."""

    async def conversation(client: genai.Client) -> tuple[Turn, Turn, Turn, str]:
        config = SPOKEN.model_copy(
            update={
                "input_audio_transcription": types.AudioTranscriptionConfig(),
                "tools": [WEATHER],
                "session_resumption": types.SessionResumptionConfig(),
            }
        )
        handle = ""
        async with client.aio.live.connect(model=MODEL, config=config) as session:
            for _ in range(4):
                await session.send_realtime_input(
                    audio=types.Blob(data=pcm(0.1), mime_type="audio/pcm;rate=16000")
                )
            for _ in range(8):
                await session.send_realtime_input(
                    audio=types.Blob(data=pcm(0.1, loud=False), mime_type="audio/pcm;rate=16000")
                )
            spoken = await receive_turn(session)
            await session.send_realtime_input(text='call get_weather {"city_name": "Oslo"}')
            calling = await receive_turn(session)
            (call,) = calling.calls
            await session.send_tool_response(
                function_responses=[
                    types.FunctionResponse(
                        id=call.id,
                        name=call.name,
                        response={"output": {"temp_c": 3}},
                        scheduling=types.FunctionResponseScheduling.WHEN_IDLE,
                    )
                ]
            )
            result = await receive_turn(session)
            while not handle:
                message = await anext(aiter(session.receive()))
                update = message.session_resumption_update
                if update and update.resumable and update.new_handle:
                    handle = update.new_handle
        resumed = config.model_copy(
            update={"session_resumption": types.SessionResumptionConfig(handle=handle)}
        )
        async with client.aio.live.connect(model=MODEL, config=resumed) as session:
            await session.send_realtime_input(text="still there?")
            again = await receive_turn(session)
        return spoken, calling, result, again.said

    async with tls_server(vertex=True) as server:
        spoken, calling, result, again = await in_sdk_thread(server, conversation, _vertex_client)
        assert spoken.heard.startswith("<audio") and spoken.said.startswith("echo #1: <audio")
        assert spoken.audio > 0
        assert calling.calls[0].args == {"city_name": "Oslo"}
        assert result.said == 'echo #3: get_weather -> {"output":{"temp_c":3}}'
        assert again == "echo #4: still there?"
        assert server.log.connection(2).resumed_from is not None
        assert all(c.vertex for c in server.log.connections)
        [response] = server.log.client_messages(1, kind="toolResponse")
        assert response.body["functionResponses"][0]["scheduling"] == "WHEN_IDLE"
