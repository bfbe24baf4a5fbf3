"""Commands on the input stream (cluster._commands), written by orjson where it means the same
as the standard library: every command reads back as it was, odd values included, and reads
the same with the standard library (what an older owner used)."""

from __future__ import annotations

import json
import os

import pytest
from google.genai import types

from liveactors._protocol import encode
from liveactors.cluster import _commands


def test_a_microphone_chunk_reads_back_as_sent() -> None:
    message = encode.realtime_audio(os.urandom(640), rate=16000)
    raw = _commands.wire(message)
    assert isinstance(raw, str) and "\n" not in raw  # it travels in a newline-separated notice
    assert _commands.decode_command(raw).message == message
    assert json.loads(raw) == {"k": "wire", "m": message}


@pytest.mark.parametrize("text", ["plain", "é ✓ 😀", "lone \ud800 surrogate", 'quote " \\ \n'])
def test_text_reads_back_as_sent(text: str) -> None:
    raw = _commands.text(text, turn_complete=False)
    command = _commands.decode_command(raw)
    assert (command.kind, command.text, command.turn_complete) == ("text", text, False)
    assert json.loads(raw)["text"] == text


def test_a_tool_result_with_integers_beyond_64_bits_keeps_them() -> None:
    """orjson refuses such integers when writing, and would read them as floats."""
    response = types.FunctionResponse(id="c1", name="f", response={"n": 2**70, "x": [1.5, -3]})
    raw = _commands.tool([response])
    [back] = _commands.decode_command(raw).responses
    assert back.response == {"n": 2**70, "x": [1.5, -3]}
    assert back.response is not None and type(back.response["n"]) is int


def test_stop_keeps_its_grace() -> None:
    assert _commands.decode_command(_commands.stop(2.5)).grace == 2.5
