"""Server-side wire rules: normalisation of client messages, encoding of server frames."""

from __future__ import annotations

import base64
import json

import pytest

from liveactors.testing import _frames as frames
from liveactors.testing._audio import audio_frame, frame_seconds, loudest_sample
from liveactors.testing._schema import normalise
from liveactors.testing._wire import (
    ProtocolViolation,
    b64_standard,
    format_duration,
    truncate_reason,
)


def test_snake_and_camel_keys_normalise_at_every_depth() -> None:
    key, message = normalise(
        {
            "setup": {
                "model": "models/x",
                "generation_config": {
                    "response_modalities": ["AUDIO"],
                    "speech_config": {
                        "voice_config": {"prebuilt_voice_config": {"voice_name": "Kore"}}
                    },
                },
                "realtimeInputConfig": {
                    "automatic_activity_detection": {"silence_duration_ms": 300}
                },
            }
        }
    )
    assert key == "setup"
    setup = message["setup"]
    assert setup["generationConfig"]["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"] == {
        "voiceName": "Kore"
    }
    assert setup["realtimeInputConfig"]["automaticActivityDetection"] == {"silenceDurationMs": 300}


def test_struct_payloads_keep_their_keys() -> None:
    _, message = normalise(
        {
            "setup": {
                "model": "models/x",
                "labels": {"team_name": "a_b"},
                "tools": [
                    {
                        "function_declarations": [
                            {
                                "name": "get_weather",
                                "parameters": {
                                    "type": "OBJECT",
                                    "properties": {
                                        "city_name": {"type": "STRING", "max_length": 3}
                                    },
                                    "property_ordering": ["city_name"],
                                },
                                "parameters_json_schema": {"properties": {"snake_key": {}}},
                            }
                        ]
                    }
                ],
            }
        }
    )
    declaration = message["setup"]["tools"][0]["functionDeclarations"][0]
    assert declaration["parameters"]["properties"] == {
        "city_name": {"type": "STRING", "maxLength": 3}
    }
    assert declaration["parameters"]["propertyOrdering"] == ["city_name"]
    assert declaration["parametersJsonSchema"] == {"properties": {"snake_key": {}}}
    assert message["setup"]["labels"] == {"team_name": "a_b"}
    _, response = normalise(
        {
            "tool_response": {
                "function_responses": [
                    {
                        "id": "fc-1",
                        "name": "f",
                        "response": {"snake_case": 1},
                        "will_continue": False,
                    }
                ]
            }
        }
    )
    assert response["toolResponse"]["functionResponses"][0] == {
        "id": "fc-1",
        "name": "f",
        "response": {"snake_case": 1},
        "willContinue": False,
    }


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            {"setup": {"model": "m", "responseModalities": ["TEXT"]}},
            "Invalid JSON payload received. Unknown name \"responseModalities\" at 'setup': "
            "Cannot find field.",
        ),
        (
            {"setup": {"model": "m", "session_resumption": {"transparent": True}}},
            'Invalid JSON payload received. Unknown name "transparent" at '
            "'setup.session_resumption': Cannot find field.",
        ),
        (
            {"bogus": {}},
            'Invalid JSON payload received. Unknown name "bogus": Cannot find field.',
        ),
        (
            {"clientContent": {"turns": [{"parts": [{"txt": "x"}]}]}},
            'Invalid JSON payload received. Unknown name "txt" at '
            "'client_content.turns[0].parts[0]': Cannot find field.",
        ),
        (
            {"clientContent": {"turnComplete": "yes"}},
            "Invalid value at 'client_content.turn_complete' (TYPE_BOOL), \"yes\"",
        ),
        ({}, "Request contains an invalid argument."),
        ({"setup": {}, "clientContent": {}}, "Request contains an invalid argument."),
        (
            {"setup": {"model": "m", "generationConfig": {"responseMimeType": "x"}}},
            "Request contains an invalid argument.",
        ),
        ([1], "Invalid JSON payload received. Expected an object."),
    ],
)
def test_refusals_carry_the_service_reasons(message: object, reason: str) -> None:
    with pytest.raises(ProtocolViolation) as info:
        normalise(message)
    assert info.value.code == 1007
    assert info.value.reason == reason


def test_vertex_mode_knows_transparent() -> None:
    _, message = normalise(
        {"setup": {"model": "m", "sessionResumption": {"transparent": True}}}, vertex=True
    )
    assert message["setup"]["sessionResumption"] == {"transparent": True}


def test_numbers_int64_and_nulls() -> None:
    _, message = normalise(
        {
            "setup": {
                "model": "m",
                "generationConfig": {"topK": 40.0, "temperature": 1, "seed": "7"},
                "contextWindowCompression": {
                    "trigger_tokens": "25600",
                    "sliding_window": {"target_tokens": 12800},
                },
                "systemInstruction": None,
            }
        }
    )
    setup = message["setup"]
    assert setup["generationConfig"] == {"topK": 40, "temperature": 1.0, "seed": 7}
    assert setup["contextWindowCompression"] == {
        "triggerTokens": 25600,
        "slidingWindow": {"targetTokens": 12800},
    }
    assert "systemInstruction" not in setup


@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
@pytest.mark.parametrize("strip", [False, True])
def test_both_base64_alphabets_padded_or_not(encode: object, strip: bool) -> None:
    raw = bytes([0xFB, 0xFF, 0xBF, 0x00, 0x01])
    text = encode(raw).decode()  # type: ignore[operator]
    if strip:
        text = text.rstrip("=")
    standard, decoded = b64_standard(text)
    assert decoded == raw
    assert standard == base64.b64encode(raw).decode()
    _, message = normalise({"realtime_input": {"audio": {"data": text, "mime_type": "audio/pcm"}}})
    assert message["realtimeInput"]["audio"]["data"] == standard


def test_invalid_base64_is_refused() -> None:
    with pytest.raises(ProtocolViolation) as info:
        normalise({"realtimeInput": {"audio": {"data": "!!!!"}}})
    assert info.value.code == 1007
    assert info.value.reason.startswith("Invalid value at 'realtime_input.audio.data' (TYPE_BYTES)")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (10, "10s"),
        (0, "0s"),
        (1.5, "1.500s"),
        (0.000001, "0.000001s"),
        (2.000000001, "2.000000001s"),
        (-1.25, "-1.250s"),
    ],
)
def test_durations(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_close_reasons_fit_in_a_close_frame() -> None:
    assert truncate_reason("x" * 200) == "x" * 123
    cut = truncate_reason("é" * 100)
    assert len(cut.encode()) <= 123 and cut == "é" * 61


def test_frames_are_compact_camel_case_json() -> None:
    assert json.loads(frames.setup_complete("s-1")[1]) == {"setupComplete": {"sessionId": "s-1"}}
    assert json.loads(frames.text_chunk('a "q" é')[1]) == {
        "serverContent": {"modelTurn": {"role": "model", "parts": [{"text": 'a "q" é'}]}}
    }
    assert frames.NOT_RESUMABLE[1] == b'{"sessionResumptionUpdate":{}}'
    assert json.loads(frames.resumption_update("h", 42)[1]) == {
        "sessionResumptionUpdate": {
            "newHandle": "h",
            "resumable": True,
            "lastConsumedClientMessageIndex": "42",
        }
    }
    assert "lastConsumedClientMessageIndex" not in frames.resumption_update("h", 0)[1].decode()
    assert json.loads(frames.go_away(1.5)[1]) == {"goAway": {"timeLeft": "1.500s"}}
    kind, frame = frames.turn_complete({"promptTokenCount": 3})
    assert kind == "serverContent.turnComplete"
    assert json.loads(frame) == {
        "serverContent": {"turnComplete": True},
        "usageMetadata": {"promptTokenCount": 3},
    }
    assert b" " not in frames.tool_call([{"id": "a", "name": "b", "args": {"x": 1}}])[1]


def test_audio_frames_are_precomputed_24khz_pcm() -> None:
    kind, frame = audio_frame(0.1)
    assert kind == "serverContent.modelTurn"
    assert audio_frame(0.1)[1] is frame
    blob = json.loads(frame)["serverContent"]["modelTurn"]["parts"][0]["inlineData"]
    assert blob["mimeType"] == "audio/pcm;rate=24000"
    data = base64.b64decode(blob["data"], validate=True)
    assert len(data) == 2 * 2400 == frame_seconds(0.1) * 24000 * 2
    assert 2000 < loudest_sample(data) <= 3000
