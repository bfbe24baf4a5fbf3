"""``encode_setup``'s handling of config forms, bad configs, refused fields and resumption."""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import types

from liveactors import InvalidCommand
from liveactors._errors import InvalidConfig
from liveactors._models import Platform
from liveactors._protocol.setup import encode_setup, model_path, vertex_model_path

MODEL = "gemini-live-2.5-flash-preview"

TYPED = types.LiveConnectConfig(
    response_modalities=[types.Modality.AUDIO],
    speech_config=types.SpeechConfig(
        voice_config=types.VoiceConfig(
            prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name="Kore")
        )
    ),
    system_instruction="Be brief.",
    input_audio_transcription=types.AudioTranscriptionConfig(),
    realtime_input_config=types.RealtimeInputConfig(
        automatic_activity_detection=types.AutomaticActivityDetection(
            start_of_speech_sensitivity=types.StartSensitivity.START_SENSITIVITY_LOW,
            silence_duration_ms=300,
        )
    ),
    session_resumption=types.SessionResumptionConfig(),
    tools=[
        types.Tool(
            function_declarations=[
                types.FunctionDeclaration(
                    name="get_weather",
                    behavior=types.Behavior.NON_BLOCKING,
                    parameters=types.Schema(
                        type=types.Type.OBJECT,
                        properties={"city_name": types.Schema(type=types.Type.STRING)},
                    ),
                )
            ]
        )
    ],
    labels={"team_name": "x"},
)

SNAKE: dict[str, Any] = {
    "response_modalities": ["AUDIO"],
    "speech_config": {"voice_config": {"prebuilt_voice_config": {"voice_name": "Kore"}}},
    "system_instruction": "Be brief.",
    "input_audio_transcription": {},
    "realtime_input_config": {
        "automatic_activity_detection": {
            "start_of_speech_sensitivity": "START_SENSITIVITY_LOW",
            "silence_duration_ms": 300,
        }
    },
    "session_resumption": {},
    "tools": [
        {
            "function_declarations": [
                {
                    "name": "get_weather",
                    "behavior": "NON_BLOCKING",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {"city_name": {"type": "STRING"}},
                    },
                }
            ]
        }
    ],
    "labels": {"team_name": "x"},
}

CAMEL: dict[str, Any] = {
    "responseModalities": ["AUDIO"],
    "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}},
    "systemInstruction": "Be brief.",
    "inputAudioTranscription": {},
    "realtimeInputConfig": {
        "automaticActivityDetection": {
            "startOfSpeechSensitivity": "START_SENSITIVITY_LOW",
            "silenceDurationMs": 300,
        }
    },
    "sessionResumption": {},
    "tools": [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "behavior": "NON_BLOCKING",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {"city_name": {"type": "STRING"}},
                    },
                }
            ]
        }
    ],
    "labels": {"team_name": "x"},
}


@pytest.mark.parametrize("config", [SNAKE, CAMEL], ids=["snake", "camel"])
def test_dict_configs_equal_the_typed_config(config: dict[str, Any]) -> None:
    assert encode_setup(config, MODEL) == encode_setup(TYPED, MODEL)


def test_none_and_empty_dict_are_the_empty_config() -> None:
    expected = {"setup": {"model": f"models/{MODEL}"}}
    assert encode_setup(None, MODEL) == expected
    assert encode_setup({}, MODEL) == expected
    assert encode_setup(types.LiveConnectConfig(), MODEL) == expected


def test_encoding_does_not_mutate_the_config() -> None:
    config = TYPED.model_copy(deep=True)
    encode_setup(config, MODEL, handle="h-1")
    assert config == TYPED
    snake = {"system_instruction": "x", "labels": {"a": "b"}}
    encode_setup(snake, MODEL)
    assert snake == {"system_instruction": "x", "labels": {"a": "b"}}


@pytest.mark.parametrize(
    ("config", "names"),
    [
        ({"temperature": "hot"}, "temperature"),
        ({"unknown_field": 1}, "unknown_field"),
        ({"response_modalities": ["SMELL"]}, "response_modalities"),
        ({"response_modalities": ["AUDIO", "TEXT"]}, "response_modalities"),
        (
            {"realtime_input_config": {"automatic_activity_detection": {"prefix_padding_ms": "x"}}},
            "realtime_input_config.automatic_activity_detection.prefix_padding_ms",
        ),
        ({"system_instruction": 42}, "system_instruction"),
        ({"tools": [42]}, "tool"),
        ({"tools": [{"function_declarations": [{"nmae": "f"}]}]}, "nmae"),
        ({"context_window_compression": {"trigger_tokens": "many"}}, "trigger_tokens"),
        (42, "LiveConnectConfig"),
        ("TEXT", "LiveConnectConfig"),
    ],
)
@pytest.mark.filterwarnings("ignore:SMELL is not a valid Modality")
def test_invalid_config_names_the_field(config: Any, names: str) -> None:
    with pytest.raises(InvalidCommand, match=names):
        encode_setup(config, MODEL)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"http_options": {"api_version": "v1alpha"}}, r"http_options .*GeminiBackend"),
        ({"explicit_vad_signal": True}, r"explicit_vad_signal .*Vertex"),
        (
            {"speech_config": {"multi_speaker_voice_config": {"speaker_voice_configs": []}}},
            r"multi_speaker_voice_config .*not supported in Live",
        ),
        (
            types.LiveConnectConfig(
                speech_config=types.SpeechConfig(
                    multi_speaker_voice_config=types.MultiSpeakerVoiceConfig()
                )
            ),
            r"multi_speaker_voice_config",
        ),
        ({"tools": [{"retrieval": {}}]}, r"tools\[\]\.retrieval .*Vertex"),
        (
            {"tools": [{"google_search": {"exclude_domains": ["a.com"]}}]},
            r"google_search\.exclude_domains .*Vertex",
        ),
        (
            {
                "safety_settings": [
                    {
                        "category": "HARM_CATEGORY_HARASSMENT",
                        "threshold": "BLOCK_NONE",
                        "method": "SEVERITY",
                    }
                ]
            },
            r"method .*Vertex",
        ),
        (
            {"generation_config": {"temperature": 0.1}, "temperature": 0.2},
            r"temperature .*both",
        ),
    ],
)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_refused_fields_have_a_clear_message(config: Any, message: str) -> None:
    with pytest.raises(InvalidCommand, match=message):
        encode_setup(config, MODEL)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (None, {"handle": "h-new"}),
        ({"session_resumption": {}}, {"handle": "h-new"}),
        ({"session_resumption": {"handle": "h-old"}}, {"handle": "h-new"}),
    ],
)
def test_handle_resumes(config: Any, expected: dict[str, str]) -> None:
    setup = encode_setup(config, MODEL, handle="h-new")["setup"]
    assert setup["sessionResumption"] == expected


def test_a_handle_in_the_config_is_sent_as_given() -> None:
    setup = encode_setup({"session_resumption": {"handle": "h-cfg"}}, MODEL)["setup"]
    assert setup["sessionResumption"] == {"handle": "h-cfg"}


def test_new_session_asks_for_handles_without_a_null_handle() -> None:
    # A 3.1 model rejected {"handle": null}: the key must be omitted, not null.
    setup = encode_setup({"session_resumption": {}}, MODEL)["setup"]
    assert setup["sessionResumption"] == {}


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("gemini-live-2.5-flash-preview", "models/gemini-live-2.5-flash-preview"),
        ("models/gemini-x", "models/gemini-x"),
        ("tunedModels/mine", "tunedModels/mine"),
    ],
)
def test_model_path(model: str, path: str) -> None:
    assert model_path(model) == path
    assert encode_setup(None, model)["setup"]["model"] == path


@pytest.mark.parametrize("model", ["", "a/../b", "m?key=1", "m&x"])
def test_bad_model_names_are_refused(model: str) -> None:
    with pytest.raises(InvalidCommand):
        encode_setup(None, model)


# --- per endpoint: fields only Vertex AI or only the Developer API accepts ------------------

VERTEX_RESOURCE = "projects/p-1/locations/us-central1/publishers/google/models/gemini-3.8-live"

VERTEX_ONLY: list[tuple[Any, str]] = [
    ({"explicit_vad_signal": True}, "explicit_vad_signal"),
    ({"session_resumption": {"transparent": True}}, "session_resumption.transparent"),
    (
        {
            "safety_settings": [
                {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"},
                {
                    "category": "HARM_CATEGORY_HATE_SPEECH",
                    "threshold": "BLOCK_NONE",
                    "method": "SEVERITY",
                },
            ]
        },
        "safety_settings[].method",
    ),
    ({"tools": [{"retrieval": {}}]}, "tools[].retrieval"),
    ({"tools": [{"enterprise_web_search": {}}]}, "tools[].enterprise_web_search"),
    (
        {"tools": [{"google_search": {"exclude_domains": ["a.com"]}}]},
        "tools[].google_search.exclude_domains",
    ),
    (
        {
            "system_instruction": {
                "role": "user",
                "parts": [{"function_call": {"name": "f", "will_continue": True}}],
            }
        },
        "system_instruction.parts[].function_call.will_continue",
    ),
]

DEVELOPER_ONLY: list[tuple[Any, str]] = [
    (
        {"generation_config": {"enable_enhanced_civic_answers": True}},
        "generation_config.enable_enhanced_civic_answers",
    ),
    (
        {
            "speech_config": {
                "voice_config": {"replicated_voice_config": {"consent_audio": b"\x00\x01"}}
            }
        },
        "speech_config.voice_config.replicated_voice_config.consent_audio",
    ),
    (
        {"tools": [{"file_search": {"file_search_store_names": ["fileSearchStores/s"]}}]},
        "tools[].file_search",
    ),
    ({"tools": [{"mcp_servers": [{"name": "weather"}]}]}, "tools[].mcp_servers[].name"),
    (
        {
            "system_instruction": {
                "role": "user",
                "parts": [{"function_response": {"name": "f", "will_continue": False}}],
            }
        },
        "system_instruction.parts[].function_response.will_continue",
    ),
    (
        {"system_instruction": {"role": "user", "parts": [{"part_metadata": {"k": "v"}}]}},
        "system_instruction.parts[].part_metadata",
    ),
]


@pytest.mark.parametrize(("config", "field"), VERTEX_ONLY)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_vertex_only_fields_are_refused_on_the_developer_api(config: Any, field: str) -> None:
    with pytest.raises(InvalidConfig) as caught:
        encode_setup(config, "gemini-3.8-live")
    error = caught.value
    assert error.field == field
    assert error.model == "gemini-3.8-live"
    assert "VertexBackend" in error.instead
    assert str(error).startswith(f"{field} is only supported on Vertex AI")
    assert isinstance(error, InvalidCommand) and isinstance(error, ValueError)
    # ... and sent on Vertex AI.
    encode_setup(config, VERTEX_RESOURCE, platform=Platform.VERTEX)


@pytest.mark.parametrize(("config", "field"), DEVELOPER_ONLY)
def test_developer_only_fields_are_refused_on_vertex(config: Any, field: str) -> None:
    with pytest.raises(InvalidConfig) as caught:
        encode_setup(config, VERTEX_RESOURCE, platform=Platform.VERTEX)
    error = caught.value
    assert error.field == field
    assert error.model == "gemini-3.8-live"
    assert "GeminiBackend" in error.instead
    assert str(error).startswith(f"{field} is only supported on the Gemini Developer API")
    # ... and sent on the Developer API.
    encode_setup(config, "gemini-3.8-live")


def test_fields_both_accept_pass_on_both() -> None:
    config = {
        "translation_config": {"target_language_code": "de"},
        "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "tools": [{"google_search": {}}, {"mcp_servers": [{}]}],
        "avatar_config": {"avatar_name": "ava"},
    }
    developer = encode_setup(config, "gemini-3.8-live")["setup"]
    vertex = encode_setup(config, VERTEX_RESOURCE, platform=Platform.VERTEX)["setup"]
    assert developer["generationConfig"]["translationConfig"] == {"targetLanguageCode": "de"}
    assert vertex["generationConfig"]["translationConfig"] == {"targetLanguageCode": "de"}
    assert developer["model"] == "models/gemini-3.8-live"
    assert vertex["model"] == VERTEX_RESOURCE


def test_http_options_names_the_backend_of_the_endpoint() -> None:
    with pytest.raises(InvalidCommand, match="VertexBackend"):
        encode_setup(
            {"http_options": {"api_version": "v1"}}, VERTEX_RESOURCE, platform=Platform.VERTEX
        )


@pytest.mark.parametrize(
    ("model", "project", "location", "path"),
    [
        ("gemini-3.8-live", None, None, "publishers/google/models/gemini-3.8-live"),
        ("gemini-3.8-live", "p", "eu", "projects/p/locations/eu/publishers/google/models/"
         "gemini-3.8-live"),
        ("models/gemini-x", None, None, "publishers/google/models/gemini-x"),
        ("meta/llama", None, None, "publishers/meta/models/llama"),
        ("publishers/google/models/x", "p", "us", "projects/p/locations/us/publishers/google/"
         "models/x"),
        (VERTEX_RESOURCE, "other", "eu", VERTEX_RESOURCE),
    ],
)  # fmt: skip
def test_vertex_model_path(
    model: str, project: str | None, location: str | None, path: str
) -> None:
    assert vertex_model_path(model, project, location) == path
    if project is None:
        assert encode_setup(None, model, platform=Platform.VERTEX)["setup"]["model"] == path


@pytest.mark.parametrize("model", ["", "a/../b", "m?key=1", "m&x", "models/"])
def test_bad_vertex_model_names_are_refused(model: str) -> None:
    with pytest.raises(InvalidCommand):
        encode_setup(None, model, platform=Platform.VERTEX)
