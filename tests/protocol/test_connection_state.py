"""``LiveConnection``: what may be sent when, the client index, and ``ReplayBuffer`` trimming."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from liveactors import InvalidCommand, ProtocolError
from liveactors._protocol import encode
from liveactors._protocol.connection import ConnectionState, LiveConnection
from liveactors._protocol.replay import ReplayBuffer
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


def closed_by_peer() -> LiveConnection:
    conn = ready_after_two()
    conn.closed(1011, "Deadline expired before operation could complete.")
    return conn


def closed_locally() -> LiveConnection:
    conn = ready()
    conn.local_close()
    return conn


def snapshot(conn: LiveConnection) -> tuple[Any, ...]:
    return (conn.state, conn.index, conn.session_id, conn.go_away_time_left, conn.close)


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
        (closed_by_peer, AUDIO, "closed"),
        (closed_locally, AUDIO, "closed"),
        (closed_by_peer, SETUP, "closed"),
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


@pytest.mark.parametrize(
    "make", [setup_sent, ready, ready_after_two, going_away, closed_by_peer, closed_locally]
)
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
    assert conn.go_away_time_left == 1.5
    assert conn.send(AUDIO)[0] == 1


@pytest.mark.parametrize(
    ("make", "frame"),
    [
        (connecting, b'{"setupComplete":{}}'),
        (setup_sent, b'{"serverContent":{"turnComplete":true}}'),
        (ready, b'{"setupComplete":{}}'),
        (closed_by_peer, b'{"serverContent":{}}'),
        (ready, b"not json"),
        (ready, b'{"goAway":{"timeLeft":"soon"}}'),
    ],
)
def test_unexpected_frames_raise_protocol_error(
    make: Callable[[], LiveConnection], frame: bytes
) -> None:
    with pytest.raises(ProtocolError):
        make().receive(frame)


def test_closed_keeps_the_close_and_classifies_it() -> None:
    conn = ready()
    error = conn.closed(1008, "BidiGenerateContent session not found")
    assert conn.state is ConnectionState.CLOSED
    assert conn.close is not None and conn.close.code == 1008
    assert type(error).__name__ == "HandleExpired"


# --- ReplayBuffer ----------------------------------------------------------------------------


def _messages(n: int) -> list[dict[str, Any]]:
    return [encode.realtime_text(f"m{i}") for i in range(1, n + 1)]


def test_replay_buffer_trimmed_by_last_consumed_index() -> None:
    conn = ready()
    buffer = ReplayBuffer()
    sent = _messages(4)
    for message in sent:
        index, _ = conn.send(message)
        buffer.sent(message, index, conn.number)
    assert buffer.consumed_through(0, conn.number) == 0  # absent index means 0: nothing
    assert buffer.consumed_through(2, conn.number) == 2
    assert buffer.messages() == sent[2:]
    assert buffer.consumed_through(2, conn.number) == 0  # idempotent
    assert buffer.consumed_through(9, conn.number) == 2
    assert len(buffer) == 0


def test_replay_reindexes_on_the_new_connection_and_trims_only_its_own_indices() -> None:
    a = ready()
    buffer = ReplayBuffer()
    sent = _messages(3)
    for message in sent:
        index, _ = a.send(message)
        buffer.sent(message, index, a.number)
    buffer.consumed_through(1, a.number)

    b = LiveConnection(number=2)
    b.send_setup(SETUP)
    b.receive(b'{"setupComplete":{}}')
    first, second = list(buffer)
    index, text = b.send(first.message)
    buffer.resent(first, index, b.number)
    assert (first.index, first.connection) == (1, 2)
    assert json.loads(text) == sent[1]
    # Connection 2 consumed its index 1; connection 1's index 3 (not yet replayed) stays.
    assert buffer.consumed_through(1, b.number) == 1
    assert [(e.index, e.connection) for e in buffer] == [(3, 1)]
    assert buffer.messages() == [sent[2]]
    index, _ = b.send(second.message)
    buffer.resent(second, index, b.number)
    assert buffer.consumed_through(2, b.number) == 1
    assert len(buffer) == 0


def test_replay_buffer_survives_a_failed_replay() -> None:
    buffer = ReplayBuffer()
    sent = _messages(2)
    for i, message in enumerate(sent, start=1):
        buffer.sent(message, i, 1)
    # Connection 2 replays one message and dies before any update; connection 3 starts over.
    buffer.resent(next(iter(buffer)), 1, 2)
    c = LiveConnection(number=3)
    c.send_setup(SETUP)
    c.receive(b'{"setupComplete":{}}')
    for entry in list(buffer):
        index, _ = c.send(entry.message)
        buffer.resent(entry, index, c.number)
    assert [(e.index, e.connection) for e in buffer] == [(1, 3), (2, 3)]
    assert buffer.messages() == sent
    buffer.clear()
    assert len(buffer) == 0
