"""The proto3-JSON rules of ``_wire``: names, base64, Durations, int64, user data, frames."""

from __future__ import annotations

import base64
import enum
import json
import os
from typing import Any

import pytest

from liveactors import InvalidCommand, ProtocolError
from liveactors._protocol import _wire
from liveactors._protocol._wire import (
    b64decode,
    b64encode,
    camel,
    dumps,
    parse_duration,
    parse_int64,
    to_wire,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("response_modalities", "responseModalities"),
        ("turn_complete", "turnComplete"),
        ("responseModalities", "responseModalities"),
        ("data", "data"),
        ("last_consumed_client_message_index", "lastConsumedClientMessageIndex"),
    ],
)
def test_camel(name: str, expected: str) -> None:
    assert camel(name) == expected


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 100, 4800])
def test_base64_round_trip_in_all_four_spellings(size: int) -> None:
    data = os.urandom(size) + b"\xff\xfe\xfb"
    standard = b64encode(data)
    assert standard == base64.b64encode(data).decode()
    urlsafe = base64.urlsafe_b64encode(data).decode()
    for text in (standard, standard.rstrip("="), urlsafe, urlsafe.rstrip("=")):
        assert b64decode(text) == data
        assert b64decode(text.encode()) == data


@pytest.mark.parametrize("text", ["A", "!!!!", "AAE=AAE=", "=AAE", "AA E=", "AAE=\n", "é", "😀😀"])
def test_bad_base64_is_protocol_error(text: str) -> None:
    with pytest.raises(ProtocolError):
        b64decode(text)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("10s", 10.0),
        ("1.500s", 1.5),
        ("0s", 0.0),
        ("0.5s", 0.5),
        ("9.000000001s", 9.000000001),
        ("-1.5s", -1.5),
        ("-0.25s", -0.25),
        (" 3s ", 3.0),
        (7, 7.0),
        (2.5, 2.5),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [
        "10",
        "s",
        "1.5",
        "1.1234567891s",
        "1,5s",
        "ten seconds",
        "",
        True,
        None,
        [],
        {},
        10**400,
        float("inf"),
        float("nan"),
        "9" * 5000 + "s",
    ],
)
def test_bad_duration_is_protocol_error(value: object) -> None:
    with pytest.raises(ProtocolError):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("42", 42), (42, 42), (42.0, 42), (" 7 ", 7), ("-3", -3), ("9223372036854775807", 2**63 - 1)],
)
def test_parse_int64(value: object, expected: int) -> None:
    assert parse_int64(value) == expected


@pytest.mark.parametrize("value", ["x", "4.5", 4.5, True, None, [], float("inf"), "9" * 5000])
def test_bad_int64_is_protocol_error(value: object) -> None:
    with pytest.raises(ProtocolError):
        parse_int64(value)


class Color(enum.Enum):
    RED = "RED"


def test_to_wire_camelcases_messages_and_keeps_user_data() -> None:
    dumped: dict[str, Any] = {
        "function_call": {"id": "a", "args": {"snake_arg": {"inner_key": None}}},
        "function_response": {"response": {"snake_out": [None, {"k_k": b"x"}]}},
        "labels": {"team_name": "v"},
        "parameters_json_schema": {"max_length": 3},
        "response_json_schema": {"additional_properties": False},
        "properties": {"user_name": {"max_length": 3, "any_of": [{"min_items": 1}]}},
        "defs": {"my_def": {"property_ordering": ["a_b"]}},
        "additional_properties": {"not_a_field": 1},
        "default": {"d_d": 1},
        "example": {"e_e": 1},
        "inline_data": {"mime_type": "image/png", "data": b"\xff\xfe"},
        "media_resolution": Color.RED,
        "omitted_field": None,
    }
    assert to_wire(dumped) == {
        "functionCall": {"id": "a", "args": {"snake_arg": {"inner_key": None}}},
        "functionResponse": {"response": {"snake_out": [None, {"k_k": "eA=="}]}},
        "labels": {"team_name": "v"},
        "parametersJsonSchema": {"max_length": 3},
        "responseJsonSchema": {"additional_properties": False},
        "properties": {"user_name": {"maxLength": 3, "anyOf": [{"minItems": 1}]}},
        "defs": {"my_def": {"propertyOrdering": ["a_b"]}},
        "additionalProperties": {"not_a_field": 1},
        "default": {"d_d": 1},
        "example": {"e_e": 1},
        "inlineData": {"mimeType": "image/png", "data": "//4="},
        "mediaResolution": "RED",
    }


def test_response_is_a_schema_in_a_declaration() -> None:
    declaration = {"name": "f", "response": {"type": "OBJECT", "max_properties": 2}}
    assert to_wire(declaration) == {"name": "f", "response": {"type": "OBJECT", "maxProperties": 2}}


def test_dumps_is_compact_utf8_json() -> None:
    assert dumps({"realtimeInput": {"text": "é €"}}) == '{"realtimeInput":{"text":"é €"}}'


@pytest.mark.parametrize(
    "message",
    [
        {"x": object()},
        {"x": float("nan")},
        {"x": float("inf")},
        {"x": "\udc80"},
        {"x": {1, 2}},
    ],
    ids=["object", "nan", "inf", "surrogate", "set"],
)
def test_dumps_refuses_what_cannot_be_a_frame(message: dict[str, Any]) -> None:
    with pytest.raises(InvalidCommand):
        dumps(message)


@pytest.mark.parametrize(
    "blob",
    [
        {"mimeType": "audio/pcm;rate=16000", "data": base64.b64encode(os.urandom(640)).decode()},
        {"mimeType": 'audio/"odd"\\type', "data": "AAAA"},
        {"mimeType": "image/jpeg", "data": "é €\n\t\x00\x1f\x7f😀"},
    ],
    ids=["base64", "quotes-backslash", "controls-non-ascii"],
)
@pytest.mark.parametrize("orjson", [True, False], ids=["orjson", "template"])
def test_media_chunks_are_written_exactly_as_the_encoder_writes_them(
    blob: dict[str, str], orjson: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Microphone chunks take a fast path (orjson, or a template): byte for byte what the
    standard encoder writes, so what reaches the service never depends on which path ran."""
    if not orjson:
        monkeypatch.setattr(_wire, "_orjson_dumps", None)
    message = {"realtimeInput": {"audio": blob}}
    expected = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    assert dumps(message) == expected


@pytest.mark.parametrize("orjson", [True, False], ids=["orjson", "template"])
def test_a_media_chunk_with_a_lone_surrogate_is_refused(
    orjson: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not orjson:
        monkeypatch.setattr(_wire, "_orjson_dumps", None)
    with pytest.raises(InvalidCommand):
        dumps({"realtimeInput": {"audio": {"mimeType": "audio/pcm", "data": "\udc80"}}})
