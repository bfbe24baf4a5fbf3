"""Every client message kind encodes to its camelCase JSON (docs/protocol.md, "Client
messages")."""

from __future__ import annotations

import base64
import datetime
import decimal
import enum
import json
from typing import Any

import pytest
from google.genai import _transformers, types

from liveactors import InvalidCommand
from liveactors._protocol import encode
from liveactors._protocol._wire import to_wire
from liveactors._protocol.connection import LiveConnection
from liveactors._protocol.decode import validate
from liveactors._protocol.setup import encode_setup

PCM = bytes(range(256)) * 25  # 6400 bytes = 200 ms at 16 kHz, includes 0xff 0xfe (URL-unsafe)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\xfb\xef" * 8


def frame(message: dict[str, Any]) -> Any:
    """What actually goes on the wire, through the connection's encoder."""
    conn = LiveConnection()
    conn.send_setup(encode_setup(None, "m"))
    conn.receive(b'{"setupComplete":{}}')
    _, text = conn.send(message)
    return json.loads(text)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param(
            encode.client_content("What is the capital of France?"),
            {
                "clientContent": {
                    "turns": [
                        {"role": "user", "parts": [{"text": "What is the capital of France?"}]}
                    ],
                    "turnComplete": True,
                }
            },
            id="clientContent-text",
        ),
        pytest.param(
            encode.client_content(None),
            {"clientContent": {"turnComplete": True}},
            id="clientContent-answer-now",
        ),
        pytest.param(
            encode.client_content(
                [
                    {"role": "user", "parts": [{"text": "Hi"}]},
                    types.Content(role="model", parts=[types.Part(text="Hello!")]),
                ],
                turn_complete=False,
            ),
            {
                "clientContent": {
                    "turns": [
                        {"role": "user", "parts": [{"text": "Hi"}]},
                        {"role": "model", "parts": [{"text": "Hello!"}]},
                    ]
                }
            },
            id="clientContent-history",
        ),
        pytest.param(
            encode.client_content(
                types.Content(
                    role="user",
                    parts=[
                        types.Part(
                            function_response=types.FunctionResponse(
                                id="fc-1", name="f", response={"snake_key": {"inner_key": 1}}
                            )
                        ),
                        types.Part(
                            function_call=types.FunctionCall(
                                id="fc-2", name="g", args={"city_name": "Paris"}
                            )
                        ),
                        types.Part.from_bytes(data=b"\xff\xfe", mime_type="image/png"),
                    ],
                )
            ),
            {
                "clientContent": {
                    "turns": [
                        {
                            "role": "user",
                            "parts": [
                                {
                                    "functionResponse": {
                                        "id": "fc-1",
                                        "name": "f",
                                        "response": {"snake_key": {"inner_key": 1}},
                                    }
                                },
                                {
                                    "functionCall": {
                                        "id": "fc-2",
                                        "name": "g",
                                        "args": {"city_name": "Paris"},
                                    }
                                },
                                {"inlineData": {"data": "//4=", "mimeType": "image/png"}},
                            ],
                        }
                    ],
                    "turnComplete": True,
                }
            },
            id="clientContent-parts",
        ),
        pytest.param(
            encode.realtime_audio(b"\x00\x00\xe8\x03\x18\xfc\x00\x00"),
            {
                "realtimeInput": {
                    "audio": {"mimeType": "audio/pcm;rate=16000", "data": "AADoAxj8AAA="}
                }
            },
            id="audio",
        ),
        pytest.param(
            encode.realtime_audio(b"\x01\x00", rate=24000),
            {"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=24000", "data": "AQA="}}},
            id="audio-rate",
        ),
        pytest.param(
            encode.realtime_video(b"\xff\xd8\xff\xe0", mime_type="image/jpeg"),
            {"realtimeInput": {"video": {"mimeType": "image/jpeg", "data": "/9j/4A=="}}},
            id="video",
        ),
        pytest.param(
            encode.realtime_text("Switch to a calmer tone."),
            {"realtimeInput": {"text": "Switch to a calmer tone."}},
            id="text",
        ),
        pytest.param(
            encode.audio_stream_end(), {"realtimeInput": {"audioStreamEnd": True}}, id="end"
        ),
        pytest.param(encode.activity_start(), {"realtimeInput": {"activityStart": {}}}, id="start"),
        pytest.param(encode.activity_end(), {"realtimeInput": {"activityEnd": {}}}, id="end-act"),
        pytest.param(
            encode.tool_response(
                encode.function_responses(
                    [
                        types.FunctionResponse(
                            id="fc-1",
                            name="get_weather",
                            response={"output": {"tempC": 18, "sky": "cloudy"}},
                        ),
                        {
                            "id": "fc-2",
                            "name": "book_table",
                            "response": {"output": "booked"},
                            "scheduling": "WHEN_IDLE",
                            "will_continue": False,
                        },
                    ]
                )
            ),
            {
                "toolResponse": {
                    "functionResponses": [
                        {
                            "id": "fc-1",
                            "name": "get_weather",
                            "response": {"output": {"tempC": 18, "sky": "cloudy"}},
                        },
                        {
                            "id": "fc-2",
                            "name": "book_table",
                            "response": {"output": "booked"},
                            "scheduling": "WHEN_IDLE",
                            "willContinue": False,
                        },
                    ]
                }
            },
            id="toolResponse",
        ),
        pytest.param(
            encode.tool_response(
                encode.function_responses(
                    {
                        "id": "fc-3",
                        "name": "f",
                        "response": {"user_data": [1, {"deep_key": None}]},
                        "scheduling": types.FunctionResponseScheduling.SILENT,
                    }
                )
            ),
            {
                "toolResponse": {
                    "functionResponses": [
                        {
                            "id": "fc-3",
                            "name": "f",
                            "response": {"user_data": [1, {"deep_key": None}]},
                            "scheduling": "SILENT",
                        }
                    ]
                }
            },
            id="toolResponse-opaque",
        ),
    ],
)
def test_client_messages_match_the_documented_json(
    message: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert message == expected
    assert frame(message) == expected


def test_audio_is_standard_base64_of_the_pcm() -> None:
    wire = frame(encode.realtime_audio(PCM))
    data = wire["realtimeInput"]["audio"]["data"]
    assert "-" not in data and "_" not in data
    assert base64.b64decode(data, validate=True) == PCM


def test_video_frame_round_trips() -> None:
    wire = frame(encode.realtime_video(JPEG))
    assert base64.b64decode(wire["realtimeInput"]["video"]["data"]) == JPEG


def test_non_ascii_text_goes_out_as_utf8_json() -> None:
    wire = frame(encode.realtime_text("Grüß dich — 你好"))
    assert wire == {"realtimeInput": {"text": "Grüß dich — 你好"}}


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: encode.realtime_audio("not bytes"), "bytes"),  # type: ignore[arg-type]
        (lambda: encode.realtime_audio(b""), "empty"),
        (lambda: encode.realtime_audio(b"\x00"), "odd length"),
        (lambda: encode.realtime_audio(b"\x00\x00", rate=4000), "rate"),
        (lambda: encode.realtime_audio(b"\x00\x00", rate=True), "rate"),  # type: ignore[arg-type]
        (lambda: encode.realtime_video(b"", mime_type="image/png"), "empty"),
        (lambda: encode.realtime_video(b"x", mime_type="video/mp4"), "mime_type"),
        (lambda: encode.realtime_text(""), "empty"),
        (lambda: encode.realtime_text(b"x"), "str"),  # type: ignore[arg-type]
        (lambda: encode.client_content(42), "turns"),
        (lambda: encode.client_content([{"role": "system", "parts": []}]), "role"),
        (lambda: encode.client_content([{"parts": [{"txt": "x"}]}]), "turns\\[0\\]"),
        (lambda: encode.client_content("x", turn_complete="yes"), "turn_complete"),  # type: ignore[arg-type]
        (lambda: encode.function_responses([]), "no tool responses"),
        (lambda: encode.function_responses({"name": "f", "response": {}}), "no id"),
        (lambda: encode.function_responses({"id": "a", "response": 5}), "responses\\[0\\]"),
        (lambda: encode.function_responses("fc-1"), "responses"),
        (
            lambda: encode.function_responses({"id": "a", "scheduling": "LATER"}),
            "scheduling",
        ),
    ],
)
@pytest.mark.filterwarnings("ignore:LATER is not a valid")
def test_bad_input_is_refused_before_sending(build: Any, match: str) -> None:
    with pytest.raises(InvalidCommand, match=match):
        build()


@pytest.mark.parametrize(
    "response",
    [
        {"when": object()},
        {"nan": float("nan")},
        {"text": "lone \ud800 surrogate"},
    ],
    ids=["object", "nan", "surrogate"],
)
def test_unsendable_payload_is_invalid_command_and_consumes_no_index(
    response: dict[str, Any],
) -> None:
    conn = LiveConnection()
    conn.send_setup(encode_setup(None, "m"))
    conn.receive(b'{"setupComplete":{}}')
    message = {"toolResponse": {"functionResponses": [{"id": "a", "response": response}]}}
    with pytest.raises(InvalidCommand):
        conn.send(message)
    assert conn.index == 0
    index, _ = conn.send(encode.audio_stream_end())
    assert index == 1


@pytest.mark.parametrize(
    "message",
    [
        encode.client_content("hi"),
        encode.client_content(
            [
                types.Content(
                    role="model", parts=[types.Part.from_bytes(data=b"\xff", mime_type="a/b")]
                )
            ],
            turn_complete=False,
        ),
        encode.realtime_audio(PCM),
        encode.realtime_video(JPEG),
        encode.realtime_text("x"),
        encode.activity_start(),
        encode.activity_end(),
        encode.audio_stream_end(),
        encode.tool_response(
            encode.function_responses(
                {
                    "id": "a",
                    "name": "f",
                    "response": {"snake_key": [None, 1]},
                    "scheduling": "INTERRUPT",
                    "will_continue": True,
                }
            )
        ),
        encode_setup(
            {
                "response_modalities": ["AUDIO"],
                "system_instruction": "x",
                # (not realtime_input_config: google-genai's LiveClientSetup type lacks it,
                # although its converter sends it, as the proto defines it)
                "input_audio_transcription": {},
                "context_window_compression": {"sliding_window": {"target_tokens": 5}},
                "session_resumption": {"handle": "h"},
            },
            "m",
        ),
    ],
    ids=lambda m: next(iter(m)),
)
def test_every_field_we_send_is_a_field_google_genai_knows(message: dict[str, Any]) -> None:
    """Round trip through the SDK's own ``LiveClientMessage``: a misspelled or made-up key would
    be dropped by the lenient parser and show up as a difference."""
    wire = json.loads(json.dumps(message)) if "setup" in message else frame(message)
    parsed = validate(types.LiveClientMessage, wire, "client message")
    assert to_wire(parsed.model_dump(exclude_none=True)) == wire


_CALL = types.Part(function_call=types.FunctionCall(id="c1", name="f", args={"a_b": 1}))
_ANSWER = types.Part(
    function_response=types.FunctionResponse(id="c1", name="f", response={"output": 1})
)


@pytest.mark.parametrize(
    "turns",
    [
        "hi",
        ["a", "b"],
        types.Part(text="p"),
        _CALL,
        [_CALL, _ANSWER, "and?"],
        ["q", _CALL, _CALL, _ANSWER],
        [types.Content(role="user", parts=[types.Part(text="u")]), "x", "y"],
        {"text": "a dict part"},
        [{"role": "model", "parts": [{"text": "m"}]}, {"text": "p"}],
    ],
    ids=repr,
)
def test_turns_are_grouped_like_google_genai(turns: Any) -> None:
    expected = [c.model_dump(exclude_none=True) for c in _transformers.t_contents(turns)]
    assert [c.model_dump(exclude_none=True) for c in encode.contents(turns)] == expected


# -- JSON and size checks -----------------------------------------------------------------------


class _Opaque:
    pass


class _Level(enum.IntEnum):
    HIGH = 3


_DEEP: dict[str, Any] = {}
_cursor = _DEEP
for _ in range(150):
    _cursor["d"] = {}
    _cursor = _cursor["d"]
_CYCLE: dict[str, Any] = {}
_CYCLE["self"] = _CYCLE


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"a": [1, {"b": decimal.Decimal(1)}]}, "r.a[1].b is a Decimal"),
        ({"a b": {1, 2}}, "r['a b'] is a set"),
        ([0.5, float("-inf")], "r[1] is -inf, which JSON cannot hold"),
        ({"when": datetime.date(2026, 1, 1)}, "r.when is a date"),
        ({"raw": b"\x00"}, "r.raw is a bytes"),
        (_Opaque(), "r is a _Opaque"),
        ({"k": {2: "two"}}, "r.k has a key of type int (2); JSON keys are strings"),
        ({"k": "\udc80"}, "r.k is not valid Unicode"),
        ({"\ud800": 1}, "r has a key that is not valid Unicode"),
        (_DEEP, "nests deeper than 100 levels"),
        (_CYCLE, "nests deeper than 100 levels"),
    ],
    ids=[
        "decimal",
        "set",
        "infinity",
        "date",
        "bytes",
        "object",
        "int key",
        "surrogate",
        "surrogate key",
        "deep",
        "cycle",
    ],
)
def test_json_problem_names_the_place_and_the_type(value: Any, problem: str) -> None:
    found = encode.json_problem(value, "r")
    assert found is not None and problem in found


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        3,
        2.5,
        "é ok",
        [1, (2, 3)],
        {"a": {"b": [None, False, -1e300]}},
        {"n": _Level.HIGH},
    ],
)
def test_plain_json_has_no_problem(value: Any) -> None:
    assert encode.json_problem(value, "r") is None


def test_media_at_the_limit_is_accepted_and_one_byte_more_refused() -> None:
    limit = encode.MAX_MEDIA_BYTES
    assert frame(encode.realtime_audio(bytes(limit)))["realtimeInput"]["audio"]
    assert frame(encode.realtime_video(b"\xff" * limit))["realtimeInput"]["video"]
    with pytest.raises(InvalidCommand, match="audio chunk is too large"):
        encode.realtime_audio(bytes(limit + 2))
    with pytest.raises(InvalidCommand, match="video frame is too large"):
        encode.realtime_video(b"\xff" * (limit + 1))


def test_a_message_over_the_limit_is_refused_by_its_encoded_size() -> None:
    limit = encode.MAX_MESSAGE_BYTES
    # Fits as it is; a quote is escaped (two bytes encoded), so the same length no longer does.
    overhead = len(json.dumps(encode.client_content("")).encode()) + len('{"text":""}')
    assert frame(encode.realtime_text("x" * (limit - 40)))
    fits = "x" * (limit - overhead - 100)
    assert encode.client_content(fits)
    with pytest.raises(InvalidCommand, match="turns is too large"):
        encode.client_content('"' * len(fits))
    with pytest.raises(InvalidCommand, match="text is too large"):
        encode.realtime_text('"' * (limit // 2 + 1))
    with pytest.raises(InvalidCommand, match=r"responses is too large: 8\.0 MiB"):
        encode.function_responses({"id": "a", "response": {"output": "x" * limit}})


def test_function_responses_must_be_plain_json() -> None:
    # to_wire would turn bytes and datetimes into strings silently: a function's response is
    # user data, so it is refused instead of being guessed at.
    with pytest.raises(InvalidCommand, match=r"responses\[1\]\.response\.at is a datetime"):
        encode.function_responses(
            [
                {"id": "a", "response": {"ok": 1}},
                {"id": "b", "response": {"at": datetime.datetime(2026, 1, 1)}},
            ]
        )


@pytest.mark.parametrize(
    "text", ["What is the capital of France?", "", "ünïcödé ✓ 日本語", 'a\nb\t"c"', "\ud800"]
)
@pytest.mark.parametrize("turn_complete", [True, False])
def test_one_str_is_encoded_as_the_general_path_encodes_it(text: str, turn_complete: bool) -> None:
    """A plain str takes a short cut past pydantic; the message (and its JSON, key order and
    all) is the one the general path makes of the same str as a one-item list, and what the
    general path refuses (a lone surrogate) it refuses with the same error."""

    def outcome(turns: object) -> object:
        try:
            message = encode.client_content(turns, turn_complete=turn_complete)
        except InvalidCommand as exc:
            return ("refused", str(exc))
        return json.dumps(message)

    assert outcome(text) == outcome([text])
