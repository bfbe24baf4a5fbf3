"""``encode_setup`` against google-genai's own converter, config by config.

The reference is built exactly as ``google.genai.live.AsyncLive.connect`` builds its first frame
(``_t_live_connect_config`` -> ``_LiveConnectParameters_to_mldev`` -> ``convert_to_dict`` ->
``encode_unserializable_types`` -> ``setv(['setup', 'model'])``), and for Vertex AI as it does with
``vertexai=True`` (``_LiveConnectParameters_to_vertex``, the model prefixed with the project and
location). The SDK leaves many keys in
snake_case and writes URL-safe base64; :func:`camelise` normalises its keys, and never touches
user data (function args, JSON schemas, label keys, Schema property names), so a converter that
wrongly camelCased user data would fail here. Our own output is compared as it is: it must
already be pure lowerCamelCase.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from typing import Any

import pytest
from google.genai import _api_client, _common, _live_converters, live, types
from google.genai import _transformers as t

from liveactors import InvalidCommand
from liveactors._models import Platform
from liveactors._protocol.setup import encode_setup, vertex_model_path

MODEL = "gemini-live-2.5-flash-preview"
_CLIENT = _api_client.BaseApiClient(api_key="golden-test-key")
PROJECT, LOCATION = "golden-project", "us-central1"
_VERTEX_CLIENT = _api_client.BaseApiClient(vertexai=True, project=PROJECT, location=LOCATION)


async def sdk_setup(config: Any, model: str = MODEL) -> dict[str, Any]:
    """The ``setup`` frame google-genai 3.4.0 would send for ``config`` (Developer API)."""
    config = copy.deepcopy(config)  # _t_live_connect_config mutates its argument
    parameter_model = await live._t_live_connect_config(_CLIENT, config)
    model_name = t.t_model(_CLIENT, model)
    request = _common.convert_to_dict(
        _live_converters._LiveConnectParameters_to_mldev(
            api_client=_CLIENT,
            from_object=types.LiveConnectParameters(
                model=model_name, config=parameter_model
            ).model_dump(exclude_none=True),
        )
    )
    del request["config"]
    request = _common.encode_unserializable_types(request)
    _common.set_value_by_path(request, ["setup", "model"], model_name)
    return json.loads(json.dumps(request))  # exactly what goes on the wire


async def sdk_vertex_setup(config: Any, model: str = MODEL) -> dict[str, Any]:
    """The ``setup`` frame google-genai would send for ``config`` on Vertex AI (project and
    location set, as in ``live.py``'s OAuth branch, before it adds a default AUDIO modality)."""
    config = copy.deepcopy(config)
    parameter_model = await live._t_live_connect_config(_VERTEX_CLIENT, config)
    model_name = t.t_model(_VERTEX_CLIENT, model)
    model_name = f"projects/{PROJECT}/locations/{LOCATION}/{model_name}"
    request = _common.convert_to_dict(
        _live_converters._LiveConnectParameters_to_vertex(
            api_client=_VERTEX_CLIENT,
            from_object=types.LiveConnectParameters(
                model=model_name, config=parameter_model
            ).model_dump(exclude_none=True),
        )
    )
    del request["config"]
    request = _common.encode_unserializable_types(request)
    return json.loads(json.dumps(request))


# --- normalisation -------------------------------------------------------------------------

# Free-form JSON (Struct / Value / map<string, string>): keys are user data, left verbatim.
_OPAQUE = {
    "args",
    "labels",
    "default",
    "example",
    "parametersJsonSchema",
    "responseJsonSchema",
    "additionalProperties",
}
# Maps from user-chosen names to Schemas: the names stay, the Schemas are normalised.
_NAME_MAPS = {"properties", "defs"}
# bytes fields: compared by decoded value (the SDK writes URL-safe, we write standard base64).
_BYTES = {"data", "thoughtSignature", "imageData"}


def _camel(key: str) -> str:
    return re.sub(r"_([a-zA-Z0-9])", lambda m: m.group(1).upper(), key)


def _bytes_of(text: str) -> bytes:
    return base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4))


def camelise(value: Any, *, parent: str = "") -> Any:
    """Normalise SDK output: camelCase message keys, decode bytes; user data untouched."""
    if isinstance(value, list):
        return [camelise(item, parent=parent) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for raw_key, item in value.items():
        key = _camel(raw_key)
        if key in _OPAQUE or (key == "response" and parent == "functionResponse"):
            out[key] = item
        elif key in _NAME_MAPS and isinstance(item, dict):
            out[key] = {name: camelise(schema, parent=key) for name, schema in item.items()}
        elif key in _BYTES and isinstance(item, str):
            out[key] = ("bytes", _bytes_of(item))
        else:
            out[key] = camelise(item, parent=key)
    return out


def ours_normalised(value: Any, *, parent: str = "") -> Any:
    """Our output with bytes decoded; asserts every message key is already lowerCamelCase and
    every base64 value uses the standard alphabet, padded."""
    if isinstance(value, list):
        return [ours_normalised(item, parent=parent) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in _OPAQUE or (key == "response" and parent == "functionResponse"):
            out[key] = item
            continue
        assert "_" not in key, f"snake_case key {key!r} under {parent!r}"
        if key in _NAME_MAPS and isinstance(item, dict):
            out[key] = {name: ours_normalised(s, parent=key) for name, s in item.items()}
        elif key in _BYTES and isinstance(item, str):
            assert re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", item) and len(item) % 4 == 0, item
            out[key] = ("bytes", base64.b64decode(item, validate=True))
        else:
            out[key] = ours_normalised(item, parent=key)
    return out


# --- the configs ---------------------------------------------------------------------------


def get_weather(city_name: str, max_days: int = 3, units: str = "metric") -> dict[str, Any]:
    """Weather forecast for a city.

    Args:
      city_name: The city, e.g. "Paris".
      max_days: How many days ahead.
    """
    return {}


def book_table(party_size: int, time_of_day: str) -> str:
    """Books a table."""
    return "booked"


_SCHEMA_TOOL = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="find_flights",
            description="Search flights",
            behavior=types.Behavior.NON_BLOCKING,
            parameters=types.Schema(
                type=types.Type.OBJECT,
                properties={
                    "origin_airport": types.Schema(type=types.Type.STRING, max_length=3),
                    "passenger_names": types.Schema(
                        type=types.Type.ARRAY,
                        items=types.Schema(type=types.Type.STRING, min_length=1),
                        max_items=9,
                        min_items=1,
                    ),
                    "cabin_class": types.Schema(
                        type=types.Type.STRING,
                        enum=["economy", "business"],
                        default="economy",
                        nullable=True,
                    ),
                    "max_price": types.Schema(type=types.Type.NUMBER, minimum=0, maximum=1e4),
                    "seat_map": types.Schema(
                        type=types.Type.OBJECT,
                        additional_properties={"type": "string", "max_length": 2},
                        properties={"window_seat": {"type": "BOOLEAN"}},  # type: ignore[dict-item]
                    ),
                },
                required=["origin_airport"],
                property_ordering=["origin_airport", "passenger_names"],
                defs={"airport_code": types.Schema(type=types.Type.STRING, max_length=3)},
                example={"origin_airport": "CDG", "passenger_names": ["Ann"]},
            ),
            response=types.Schema(
                type=types.Type.OBJECT,
                properties={"flight_ids": types.Schema(type=types.Type.ARRAY, max_items=5)},
            ),
        ),
        types.FunctionDeclaration(
            name="json_schema_tool",
            parameters_json_schema={
                "type": "object",
                "properties": {"user_id": {"type": "string", "max_length": 8}},
                "required": ["user_id"],
                "additional_properties": False,
            },
            response_json_schema={"type": "object", "properties": {"is_ok": {"type": "boolean"}}},
        ),
    ]
)

CONFIGS: dict[str, Any] = {
    "empty": types.LiveConnectConfig(),
    "text-modality": types.LiveConnectConfig(response_modalities=[types.Modality.TEXT]),
    "audio-speech-sampling": types.LiveConnectConfig(
        response_modalities=["AUDIO"],
        speech_config=types.SpeechConfig(
            voice_config=types.VoiceConfig(
                prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name="Kore")
            ),
            language_code="en-US",
        ),
        temperature=0.7,
        top_p=0.9,
        top_k=40,
        max_output_tokens=512,
        seed=7,
    ),
    "transcription-and-vad": types.LiveConnectConfig(
        input_audio_transcription=types.AudioTranscriptionConfig(),
        output_audio_transcription=types.AudioTranscriptionConfig(language_codes=["en-US"]),
        realtime_input_config=types.RealtimeInputConfig(
            automatic_activity_detection=types.AutomaticActivityDetection(
                disabled=False,
                start_of_speech_sensitivity=types.StartSensitivity.START_SENSITIVITY_LOW,
                end_of_speech_sensitivity=types.EndSensitivity.END_SENSITIVITY_LOW,
                prefix_padding_ms=20,
                silence_duration_ms=100,
            ),
            activity_handling=types.ActivityHandling.NO_INTERRUPTION,
            turn_coverage=types.TurnCoverage.TURN_INCLUDES_ALL_INPUT,
        ),
    ),
    "manual-vad": types.LiveConnectConfig(
        realtime_input_config=types.RealtimeInputConfig(
            automatic_activity_detection=types.AutomaticActivityDetection(disabled=True)
        )
    ),
    "tools-non-blocking-and-builtins": types.LiveConnectConfig(
        tools=[
            types.Tool(google_search=types.GoogleSearch()),
            _SCHEMA_TOOL,
            types.Tool(code_execution=types.ToolCodeExecution()),
            types.Tool(url_context=types.UrlContext()),
        ]
    ),
    "callables-as-tools": types.LiveConnectConfig(
        tools=[get_weather, types.Tool(google_search=types.GoogleSearch()), book_table]
    ),
    "dict-tools": types.LiveConnectConfig(
        tools=[
            {"function_declarations": [{"name": "ping", "behavior": "NON_BLOCKING"}]},
            {"codeExecution": {}},
        ]
    ),
    "compression-and-resumption": types.LiveConnectConfig(
        context_window_compression=types.ContextWindowCompressionConfig(
            trigger_tokens=25600,
            sliding_window=types.SlidingWindow(target_tokens=12800),
        ),
        session_resumption=types.SessionResumptionConfig(),
    ),
    "resume-with-handle": types.LiveConnectConfig(
        session_resumption=types.SessionResumptionConfig(handle="h-123")
    ),
    "media-proactivity-affective": types.LiveConnectConfig(
        media_resolution=types.MediaResolution.MEDIA_RESOLUTION_LOW,
        proactivity=types.ProactivityConfig(proactive_audio=True),
        enable_affective_dialog=True,
    ),
    "thinking": types.LiveConnectConfig(
        thinking_config=types.ThinkingConfig(include_thoughts=False, thinking_budget=0)
    ),
    "thinking-level": types.LiveConnectConfig(
        thinking_config=types.ThinkingConfig(thinking_level=types.ThinkingLevel.LOW)
    ),
    "system-instruction-str": types.LiveConnectConfig(system_instruction="You are terse."),
    "system-instruction-part": types.LiveConnectConfig(
        system_instruction=types.Part(text="Answer in French.")
    ),
    "system-instruction-bytes-part": types.LiveConnectConfig(
        system_instruction=types.Part.from_bytes(data=b"\xff\xfe\xfb\x00", mime_type="image/png")
    ),
    "system-instruction-content": types.LiveConnectConfig(
        system_instruction=types.Content(
            role="user",
            parts=[types.Part(text="Paragraph one."), types.Part(text="Paragraph two.")],
        )
    ),
    "system-instruction-list": types.LiveConnectConfig(
        system_instruction=["First.", types.Part(text="Second.")]  # type: ignore[arg-type]
    ),
    "system-instruction-function-parts": types.LiveConnectConfig(
        system_instruction=types.Content(
            role="user",
            parts=[
                types.Part(
                    function_call=types.FunctionCall(
                        id="fc-1", name="get_weather", args={"city_name": {"nested_key": 1}}
                    )
                ),
                types.Part(
                    function_response=types.FunctionResponse(
                        id="fc-1",
                        name="get_weather",
                        response={"output": {"temp_c": 18}},
                        will_continue=False,
                    )
                ),
            ],
        )
    ),
    "safety-labels": types.LiveConnectConfig(
        safety_settings=[
            types.SafetySetting(
                category=types.HarmCategory.HARM_CATEGORY_HARASSMENT,
                threshold=types.HarmBlockThreshold.BLOCK_ONLY_HIGH,
            )
        ],
        labels={"team_name": "voice", "cost_center": "r_and_d"},
    ),
    "history-translation": types.LiveConnectConfig(
        history_config=types.HistoryConfig(initial_history_in_client_content=True),
        translation_config=types.TranslationConfig(
            target_language_code="de-DE", echo_target_language=True
        ),
    ),
    "deprecated-generation-config": types.LiveConnectConfig(
        generation_config=types.GenerationConfig(
            temperature=0.2, candidate_count=1, presence_penalty=0.5
        ),
        response_modalities=["TEXT"],
    ),
    "everything": types.LiveConnectConfig(
        response_modalities=["AUDIO"],
        speech_config=types.SpeechConfig(language_code="fr-FR"),
        system_instruction="Be brief.",
        tools=[book_table, types.Tool(google_search=types.GoogleSearch())],
        session_resumption=types.SessionResumptionConfig(),
        input_audio_transcription=types.AudioTranscriptionConfig(),
        output_audio_transcription=types.AudioTranscriptionConfig(),
        context_window_compression=types.ContextWindowCompressionConfig(
            sliding_window=types.SlidingWindow()
        ),
        proactivity=types.ProactivityConfig(proactive_audio=False),
        media_resolution=types.MediaResolution.MEDIA_RESOLUTION_MEDIUM,
        labels={"env_name": "test"},
    ),
    "more-tools-and-avatar": types.LiveConnectConfig(
        tools=[
            types.Tool(google_maps=types.GoogleMaps(enable_widget=True)),
            types.Tool(
                file_search=types.FileSearch(
                    file_search_store_names=["fileSearchStores/s1"], top_k=3
                )
            ),
            {"google_search": {"time_range_filter": {"start_time": "2026-01-01T00:00:00Z"}}},
        ],
        avatar_config=types.AvatarConfig(
            avatar_name="ava",
            audio_bitrate_bps=64000,
            customized_avatar=types.CustomizedAvatar(
                image_mime_type="image/png", image_data=b"\x89PNG\xff\xfe"
            ),
        ),
    ),
    "dict-config-snake": {
        "response_modalities": ["TEXT"],
        "system_instruction": "Dict instruction.",
        "realtime_input_config": {"activity_handling": "NO_INTERRUPTION"},
        "labels": {"snake_label": "v"},
    },
    "dict-config-camel": {
        "responseModalities": ["AUDIO"],
        "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Puck"}}},
        "contextWindowCompression": {"triggerTokens": 1000},
    },
}


@pytest.mark.filterwarnings("ignore:Setting `LiveConnectConfig.generation_config`")
@pytest.mark.parametrize("name", list(CONFIGS))
async def test_setup_matches_google_genai(name: str) -> None:
    config = CONFIGS[name]
    expected = camelise(await sdk_setup(config))
    ours = encode_setup(copy.deepcopy(config), MODEL)
    json.dumps(ours)  # must be plain JSON already
    assert ours_normalised(ours) == expected


def test_there_are_enough_golden_configs() -> None:
    assert len(CONFIGS) >= 12


VERTEX_CONFIGS: dict[str, Any] = {
    **CONFIGS,
    "vertex-only-fields": types.LiveConnectConfig(
        explicit_vad_signal=True,
        safety_settings=[
            types.SafetySetting(
                category=types.HarmCategory.HARM_CATEGORY_HARASSMENT,
                threshold=types.HarmBlockThreshold.BLOCK_ONLY_HIGH,
                method=types.HarmBlockMethod.SEVERITY,
            )
        ],
        session_resumption=types.SessionResumptionConfig(transparent=True),
        tools=[
            types.Tool(retrieval=types.Retrieval(vertex_ai_search=types.VertexAISearch(
                datastore="projects/p/locations/global/collections/c/dataStores/d"
            ))),
            {"google_search": {"exclude_domains": ["example.com"]}},
            types.Tool(enterprise_web_search=types.EnterpriseWebSearch()),
        ],
    ),
    "model-selection-config": types.LiveConnectConfig(
        generation_config=types.GenerationConfig(
            model_selection_config=types.ModelSelectionConfig(
                feature_selection_preference=types.FeatureSelectionPreference.PRIORITIZE_QUALITY
            )
        )
    ),
}  # fmt: skip


@pytest.mark.filterwarnings("ignore:Setting `LiveConnectConfig.generation_config`")
@pytest.mark.parametrize("name", list(VERTEX_CONFIGS))
async def test_vertex_setup_matches_google_genai(name: str) -> None:
    config = VERTEX_CONFIGS[name]
    resource = vertex_model_path(MODEL, PROJECT, LOCATION)
    try:
        reference = await sdk_vertex_setup(config)
    except ValueError as refused:
        # google-genai refuses a Developer-only field on Vertex AI: so must we.
        assert "Gemini Developer API" in str(refused)
        with pytest.raises(InvalidCommand, match="Gemini Developer API"):
            encode_setup(copy.deepcopy(config), resource, platform=Platform.VERTEX)
        return
    ours = encode_setup(copy.deepcopy(config), resource, platform=Platform.VERTEX)
    json.dumps(ours)
    assert ours["setup"]["model"] == reference["setup"]["model"]
    assert ours_normalised(ours) == camelise(reference)


async def test_vertex_golden_covers_refusals_and_acceptances() -> None:
    refused = 0
    for config in VERTEX_CONFIGS.values():
        try:
            await sdk_vertex_setup(config)
        except ValueError:
            refused += 1
    assert 1 <= refused < len(VERTEX_CONFIGS) - 10


# --- a few hand-written expectations, so the normaliser is not the only oracle -------------


def test_schema_property_names_and_defs_keep_their_spelling() -> None:
    setup = encode_setup(types.LiveConnectConfig(tools=[_SCHEMA_TOOL]), MODEL)["setup"]
    (tool,) = setup["tools"]
    flights, json_tool = tool["functionDeclarations"]
    params = flights["parameters"]
    assert flights["behavior"] == "NON_BLOCKING"
    assert list(params["properties"]) == [
        "origin_airport",
        "passenger_names",
        "cabin_class",
        "max_price",
        "seat_map",
    ]
    assert params["properties"]["passenger_names"] == {
        "type": "ARRAY",
        "items": {"type": "STRING", "minLength": 1},
        "maxItems": 9,
        "minItems": 1,
    }
    assert params["propertyOrdering"] == ["origin_airport", "passenger_names"]
    assert params["defs"] == {"airport_code": {"type": "STRING", "maxLength": 3}}
    assert params["example"] == {"origin_airport": "CDG", "passenger_names": ["Ann"]}
    seat_map = params["properties"]["seat_map"]
    assert seat_map["additionalProperties"] == {"type": "string", "max_length": 2}
    assert seat_map["properties"] == {"window_seat": {"type": "BOOLEAN"}}
    assert flights["response"]["properties"] == {"flight_ids": {"type": "ARRAY", "maxItems": 5}}
    assert json_tool["parametersJsonSchema"]["properties"] == {
        "user_id": {"type": "string", "max_length": 8}
    }
    assert json_tool["parametersJsonSchema"]["additional_properties"] is False


def test_callable_tool_declaration_is_json_schema() -> None:
    setup = encode_setup({"tools": [get_weather]}, MODEL)["setup"]
    (declaration,) = setup["tools"][0]["functionDeclarations"]
    assert declaration["name"] == "get_weather"
    assert declaration["description"].startswith("Weather forecast for a city.")
    schema = declaration["parametersJsonSchema"]
    assert set(schema["properties"]) == {"city_name", "max_days", "units"}
    assert schema["required"] == ["city_name"]


def test_the_example_of_live_protocol_section_3_1() -> None:
    config = types.LiveConnectConfig(
        response_modalities=["AUDIO"],
        temperature=0.7,
        speech_config={
            "voice_config": {"prebuilt_voice_config": {"voice_name": "Kore"}},
            "language_code": "en-US",
        },
        system_instruction="You are terse.",
        session_resumption=types.SessionResumptionConfig(),
        context_window_compression={
            "trigger_tokens": 25600,
            "sliding_window": {"target_tokens": 12800},
        },
        input_audio_transcription={},
        output_audio_transcription={},
    )
    setup = encode_setup(config, "gemini-2.5-flash-native-audio-preview-12-2025")
    wire = json.loads(json.dumps(setup))
    compression = wire["setup"]["contextWindowCompression"]
    # int64: a JSON number here (the service accepts a number or a string).
    assert compression == {"triggerTokens": 25600, "slidingWindow": {"targetTokens": 12800}}
    del wire["setup"]["contextWindowCompression"]
    assert wire == {
        "setup": {
            "model": "models/gemini-2.5-flash-native-audio-preview-12-2025",
            "generationConfig": {
                "responseModalities": ["AUDIO"],
                "temperature": 0.7,
                "speechConfig": {
                    "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}},
                    "languageCode": "en-US",
                },
            },
            "systemInstruction": {"role": "user", "parts": [{"text": "You are terse."}]},
            "sessionResumption": {},
            "inputAudioTranscription": {},
            "outputAudioTranscription": {},
        }
    }


def test_bytes_are_standard_base64() -> None:
    setup = encode_setup(CONFIGS["system-instruction-bytes-part"], MODEL)["setup"]
    blob = setup["systemInstruction"]["parts"][0]["inlineData"]
    assert blob == {"data": "//77AA==", "mimeType": "image/png"}
