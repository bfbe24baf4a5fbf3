"""Server frames (text or binary UTF-8) -> JSON -> ``types.LiveServerMessage``.

Frames are the examples of docs/protocol.md ("Server messages", "Turn orderings"). Parsing
must be lenient where the protocol says so (unknown fields, omitted defaults, int64 as string or
number) and raise only ``ProtocolError`` otherwise.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.genai import types

from liveactors import ProtocolError
from liveactors._protocol.decode import parse_frame, server_message

AUDIO_B64 = "AID/f/7///4="
AUDIO = b"\x00\x80\xff\x7f\xfe\xff\xff\xfe"

USAGE = (
    '{"promptTokenCount":162,"responseTokenCount":42,"totalTokenCount":204,'
    '"promptTokensDetails":[{"modality":"TEXT","tokenCount":139},'
    '{"modality":"AUDIO","tokenCount":23}],'
    '"responseTokensDetails":[{"modality":"AUDIO","tokenCount":42}]}'
)

FRAMES: dict[str, str] = {
    "setupComplete": '{"setupComplete":{}}',
    "setupComplete-sessionId": '{"setupComplete":{"sessionId":"abc-123"}}',
    "audio": (
        '{"serverContent":{"modelTurn":{"role":"model","parts":[{"inlineData":'
        f'{{"mimeType":"audio/pcm;rate=24000","data":"{AUDIO_B64}"}}}}]}}}}}}'
    ),
    "text": '{"serverContent":{"modelTurn":{"role":"model","parts":[{"text":"Paris."}]}}}',
    "outputTranscription": '{"serverContent":{"outputTranscription":{"text":"It\'s sunny"}}}',
    "inputTranscription": '{"serverContent":{"inputTranscription":{"text":"what\'s the weather"}}}',
    "generationComplete": '{"serverContent":{"generationComplete":true}}',
    "turnComplete+usage": '{"serverContent":{"turnComplete":true},"usageMetadata":' + USAGE + "}",
    "interrupted": '{"serverContent":{"interrupted":true}}',
    "toolCall": (
        '{"toolCall":{"functionCalls":[{"id":"fc-1","name":"get_weather",'
        '"args":{"city":"Paris"}}]}}'
    ),
    "toolCallCancellation": '{"toolCallCancellation":{"ids":["fc-1"]}}',
    "goAway": '{"goAway":{"timeLeft":"10s"}}',
    "resumption": '{"sessionResumptionUpdate":{"newHandle":"CiQ2ZDk","resumable":true}}',
    "resumption-empty": '{"sessionResumptionUpdate":{}}',
    "resumption-index": (
        '{"sessionResumptionUpdate":{"newHandle":"CiQ3","resumable":true,'
        '"lastConsumedClientMessageIndex":"42"}}'
    ),
    "usage-alone": '{"usageMetadata":' + USAGE + "}",
    "voiceActivity": '{"voiceActivity":{"type":"ACTIVITY_START","audioOffset":"1.200s"}}',
    "vadSignal": '{"voiceActivityDetectionSignal":{"vadSignalType":"VAD_SIGNAL_TYPE_SOS"}}',
}


def _expected_fields(name: str, message: types.LiveServerMessage) -> None:
    """Spot checks per frame: the values land where google-genai puts them."""
    content = message.server_content
    if name.startswith("setupComplete"):
        assert message.setup_complete is not None
        if name.endswith("sessionId"):
            assert message.setup_complete.session_id == "abc-123"
    elif name == "audio":
        assert content and content.model_turn and content.model_turn.parts
        blob = content.model_turn.parts[0].inline_data
        assert blob is not None and blob.data == AUDIO
        assert blob.mime_type == "audio/pcm;rate=24000"
    elif name == "text":
        assert content and content.model_turn and content.model_turn.parts
        assert content.model_turn.parts[0].text == "Paris."
        assert content.model_turn.role == "model"
    elif name == "outputTranscription":
        assert content and content.output_transcription
        assert content.output_transcription.text == "It's sunny"
    elif name == "inputTranscription":
        assert content and content.input_transcription
        assert content.input_transcription.text == "what's the weather"
    elif name == "generationComplete":
        assert content and content.generation_complete is True
        assert content.turn_complete is None  # omitted default
    elif name == "turnComplete+usage":
        assert content and content.turn_complete is True
        usage = message.usage_metadata
        assert usage is not None and usage.total_token_count == 204
        assert usage.response_token_count == 42
        assert usage.prompt_tokens_details is not None
        assert [d.token_count for d in usage.prompt_tokens_details] == [139, 23]
    elif name == "interrupted":
        assert content and content.interrupted is True
    elif name == "toolCall":
        assert message.tool_call and message.tool_call.function_calls
        (call,) = message.tool_call.function_calls
        assert (call.id, call.name, call.args) == ("fc-1", "get_weather", {"city": "Paris"})
    elif name == "toolCallCancellation":
        assert message.tool_call_cancellation
        assert message.tool_call_cancellation.ids == ["fc-1"]
    elif name == "goAway":
        assert message.go_away and message.go_away.time_left == "10s"
    elif name == "resumption":
        update = message.session_resumption_update
        assert update and update.new_handle == "CiQ2ZDk" and update.resumable is True
    elif name == "resumption-empty":
        update = message.session_resumption_update
        assert update is not None and update.new_handle is None and not update.resumable
    elif name == "resumption-index":
        update = message.session_resumption_update
        assert update and update.last_consumed_client_message_index == 42
    elif name == "usage-alone":
        assert message.usage_metadata and message.usage_metadata.prompt_token_count == 162
    elif name == "voiceActivity":
        activity = message.voice_activity
        assert activity is not None
        assert activity.voice_activity_type == types.VoiceActivityType.ACTIVITY_START
    elif name == "vadSignal":
        assert message.voice_activity_detection_signal is not None
    else:  # pragma: no cover
        raise AssertionError(name)


@pytest.mark.parametrize("encoding", ["text", "binary", "memoryview"])
@pytest.mark.parametrize("name", list(FRAMES))
def test_server_frames_decode(name: str, encoding: str) -> None:
    text = FRAMES[name]
    raw: Any = {
        "text": text,
        "binary": text.encode(),
        "memoryview": memoryview(text.encode()),
    }[encoding]
    parsed = parse_frame(raw)
    assert parsed == json.loads(text)
    message = server_message(parsed)
    assert isinstance(message, types.LiveServerMessage)
    _expected_fields(name, message)
    # The frame itself is accepted too.
    assert server_message(text.encode()) == message


def _add_unknown_fields(value: Any, depth: int = 0) -> Any:
    if isinstance(value, dict):
        out = {k: _add_unknown_fields(v, depth + 1) for k, v in value.items()}
        out[f"futureField{depth}"] = {"nested": [1, "x"]}
        return out
    if isinstance(value, list):
        return [_add_unknown_fields(v, depth + 1) for v in value]
    return value


@pytest.mark.parametrize("name", list(FRAMES))
def test_unknown_fields_at_every_depth_are_ignored(name: str) -> None:
    plain = json.loads(FRAMES[name])
    noisy = _add_unknown_fields(plain)
    if name == "toolCall":
        # args is user data: whatever it holds is kept, so compare without it.
        noisy["toolCall"]["functionCalls"][0]["args"] = plain["toolCall"]["functionCalls"][0][
            "args"
        ]
    assert server_message(noisy) == server_message(plain)


def test_unknown_top_level_message_is_an_empty_message() -> None:
    message = server_message(b'{"brandNewMessage":{"x":1}}')
    assert message == types.LiveServerMessage()


@pytest.mark.parametrize("index", ['"42"', "42", "42.0", '" 42 "'])
def test_int64_as_string_or_number(index: str) -> None:
    frame = '{"sessionResumptionUpdate":{"lastConsumedClientMessageIndex":' + index + "}}"
    update = server_message(frame).session_resumption_update
    assert update is not None and update.last_consumed_client_message_index == 42


def test_snake_case_keys_are_accepted_too() -> None:
    message = server_message(
        {"server_content": {"model_turn": {"parts": [{"text": "hi"}]}, "turn_complete": True}}
    )
    assert message.server_content is not None
    assert message.server_content.turn_complete is True


@pytest.mark.parametrize("data", ["AID_f_7___4", "AID/f/7///4", "AID_f_7___4="])
def test_inline_data_in_any_base64_alphabet(data: str) -> None:
    frame = {
        "serverContent": {
            "modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm", "data": data}}]}
        }
    }
    message = server_message(frame)
    assert message.server_content and message.server_content.model_turn
    assert message.server_content.model_turn.parts
    blob = message.server_content.model_turn.parts[0].inline_data
    assert blob is not None and blob.data == AUDIO


def test_map_of_messages_keeps_user_names() -> None:
    # dict[str, Model] fields: the keys are names, not fields, and must survive stripping.
    from liveactors._protocol.decode import validate

    schema = validate(
        types.Schema,
        {"type": "OBJECT", "properties": {"city_name": {"type": "STRING", "junk": 1}}},
        "schema",
    )
    assert schema.properties is not None
    assert list(schema.properties) == ["city_name"]
    assert schema.properties["city_name"].type == types.Type.STRING


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00garbage",
        b"[1, 2]",
        b'"setupComplete"',
        b"null",
        b"42",
        b'{"serverContent": ',
        b"[" * 100_000 + b"]" * 100_000,
        "{" + '"a":{' * 5000 + "}" * 5001,
        b"\xc3\x28",
    ],
)
def test_bad_frames_raise_protocol_error(frame: bytes | str) -> None:
    with pytest.raises(ProtocolError):
        parse_frame(frame)


@pytest.mark.parametrize(
    "message",
    [
        {"serverContent": []},
        {"serverContent": {"modelTurn": {"parts": "text"}}},
        {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": "!!"}}]}}},
        {"toolCall": {"functionCalls": [{"args": [1]}]}},
        {"usageMetadata": {"totalTokenCount": "lots"}},
        {"sessionResumptionUpdate": {"lastConsumedClientMessageIndex": "x"}},
        {"goAway": "soon"},
    ],
)
def test_wrongly_shaped_messages_raise_protocol_error(message: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        server_message(message)
