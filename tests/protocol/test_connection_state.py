"""``LiveConnection``: what may be sent when, and the client index."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from liveactors import InvalidCommand, ProtocolError
from liveactors._protocol import encode
from liveactors._protocol.connection import ConnectionState, LiveConnection
from liveactors._protocol.setup import encode_setup

SETUP = encode_setup({"session_resumption": {}}, "m")
AUDIO = encode.realtime_audio(b"\x00\x00")


def connecting() -> LiveConnection:
    return LiveConnection()


def setup_sent() -> LiveConnection:
    conn = LiveConnection()
    conn.send_setup(SETUP)
    return conn


def ready() -> LiveConnection:
    conn = setup_sent()
    conn.receive(b'{"setupComplete":{}}')
    return conn


def ready_after_two() -> LiveConnection:
    conn = ready()
    conn.send(AUDIO)
    conn.send(AUDIO)
    return conn


def going_away() -> LiveConnection:
    conn = ready()
    conn.receive(b'{"goAway":{"timeLeft":"1.500s"}}')
    return conn


def closed() -> LiveConnection:
    conn = ready_after_two()
    conn.local_close()
    return conn


def snapshot(conn: LiveConnection) -> tuple[Any, ...]:
    return (conn.state, conn.index, conn.session_id)


def test_setup_is_index_zero_and_each_message_adds_one() -> None:
    conn = LiveConnection()
    assert conn.state is ConnectionState.CONNECTING
    text = conn.send_setup(SETUP)
    assert json.loads(text) == SETUP
    assert (conn.state, conn.index) == (ConnectionState.SETUP_SENT, 0)
    conn.receive('{"setupComplete":{"sessionId":"s-9"}}')
    assert (conn.state, conn.session_id) == (ConnectionState.READY, "s-9")
    messages = [
        AUDIO,
        encode.client_content("hi"),
        encode.tool_response(encode.function_responses({"id": "a", "response": {}})),
        encode.activity_start(),
        encode.realtime_text("x"),
    ]
    assert [conn.send(m)[0] for m in messages] == [1, 2, 3, 4, 5]
    assert conn.index == 5


def test_index_restarts_on_every_connection() -> None:
    first = ready_after_two()
    assert first.index == 2
    second = LiveConnection(number=2)
    second.send_setup(encode_setup(None, "m", handle="h"))
    assert second.index == 0
    second.receive(b'{"setupComplete":{}}')
    assert second.send(AUDIO)[0] == 1


@pytest.mark.parametrize(
    ("make", "message", "match"),
    [
        (connecting, AUDIO, "before the server confirmed setup"),
        (setup_sent, AUDIO, "before the server confirmed setup"),
        (setup_sent, encode.client_content("hi"), "before the server confirmed setup"),
        (ready, SETUP, "setup may only be sent once"),
        (ready_after_two, SETUP, "setup may only be sent once"),
        (going_away, SETUP, "setup may only be sent once"),
        (closed, AUDIO, "closed"),
        (closed, SETUP, "closed"),
        (ready, {"clientContent": {}, "realtimeInput": {}}, "exactly one"),
        (ready, {}, "exactly one"),
    ],
)
def test_refused_sends_change_nothing(
    make: Callable[[], LiveConnection], message: dict[str, Any], match: str
) -> None:
    conn = make()
    before = snapshot(conn)
    with pytest.raises(InvalidCommand, match=match):
        conn.send(message)
    assert snapshot(conn) == before


@pytest.mark.parametrize("make", [setup_sent, ready, ready_after_two, going_away, closed])
def test_a_second_setup_is_refused_and_changes_nothing(make: Callable[[], LiveConnection]) -> None:
    conn = make()
    before = snapshot(conn)
    with pytest.raises(InvalidCommand, match="setup"):
        conn.send_setup(SETUP)
    assert snapshot(conn) == before


def test_first_message_must_be_setup() -> None:
    conn = LiveConnection()
    with pytest.raises(InvalidCommand, match="setup"):
        conn.send_setup(AUDIO)
    assert snapshot(conn) == snapshot(LiveConnection())


def test_sending_is_allowed_while_going_away() -> None:
    conn = going_away()
    assert conn.state is ConnectionState.GOING_AWAY
    assert conn.send(AUDIO)[0] == 1


@pytest.mark.parametrize(
    ("make", "frame"),
    [
        (connecting, b'{"setupComplete":{}}'),
        (setup_sent, b'{"serverContent":{"turnComplete":true}}'),
        (ready, b'{"setupComplete":{}}'),
        (closed, b'{"serverContent":{}}'),
        (ready, b"not json"),
    ],
)
def test_unexpected_frames_raise_protocol_error(
    make: Callable[[], LiveConnection], frame: bytes
) -> None:
    with pytest.raises(ProtocolError):
        make().receive(frame)
