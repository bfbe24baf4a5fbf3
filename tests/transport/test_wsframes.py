"""The frame reader of the client link, against frames wsproto writes as a server would."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

from liveactors._wsframes import BINARY, CLOSE, PING, TEXT, FrameError, FrameReader

BIG = 16 * 2**20


def server() -> Connection:
    return Connection(ConnectionType.SERVER)


def read_all(reader: FrameReader) -> list[tuple[int, str | bytes]]:
    out = []
    while (frame := reader.next()) is not None:
        out.append(frame)
    return out


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 300_000])
def test_every_length_encoding_round_trips(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    reader = FrameReader(BIG)
    reader.feed(server().send(BytesMessage(data=payload)))
    assert read_all(reader) == [(BINARY, payload)]


def test_text_comes_back_as_str_and_binary_as_bytes() -> None:
    sender = server()
    reader = FrameReader(BIG)
    reader.feed(sender.send(TextMessage(data='{"é": 1}')) + sender.send(BytesMessage(data=b"\x00")))
    assert read_all(reader) == [(TEXT, '{"é": 1}'), (BINARY, b"\x00")]


def test_bytes_fed_one_at_a_time_give_the_same_messages() -> None:
    sender = server()
    data = b"".join(
        [
            sender.send(TextMessage(data="a" * 300)),
            sender.send(Ping(payload=b"p")),
            sender.send(BytesMessage(data=b"b" * 70_000)),
        ]
    )
    reader = FrameReader(BIG)
    got = []
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
        got.extend(read_all(reader))
    assert got == [(TEXT, "a" * 300), (PING, b"p"), (BINARY, b"b" * 70_000)]


def test_fragments_join_and_control_frames_may_come_between_them() -> None:
    sender = server()
    reader = FrameReader(BIG)
    reader.feed(
        sender.send(TextMessage(data="Hel", message_finished=False))
        + sender.send(Ping(payload=b"!"))
        + sender.send(TextMessage(data="lo", message_finished=True))
    )
    assert read_all(reader) == [(PING, b"!"), (TEXT, "Hello")]


def test_a_close_frame_carries_its_code_and_reason() -> None:
    reader = FrameReader(BIG)
    reader.feed(server().send(CloseConnection(code=1011, reason="Internal error encountered.")))
    [(opcode, payload)] = read_all(reader)
    assert opcode == CLOSE
    assert payload == (1011).to_bytes(2, "big") + b"Internal error encountered."


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (bytes([0x82 | 0x40, 0x01, 0x00]), 1002, "reserved bits"),
        (bytes([0x82, 0x81, 1, 2, 3, 4, 0]), 1002, "must not mask"),
        (bytes([0x83, 0x00]), 1002, "unknown opcode"),
        (bytes([0x09, 0x00]), 1002, "control frames"),  # a fragmented ping
        (bytes([0x89, 126, 0, 126]) + bytes(126), 1002, "control frames"),  # a 126-byte ping
        (bytes([0x80, 0x01, 0x00]), 1002, "no message to continue"),
        (bytes([0x01, 0x01, 0x61, 0x81, 0x01, 0x62]), 1002, "before the last one finished"),
        (bytes([0x81, 0x02, 0xC3, 0x28]), 1007, "UTF-8"),
        (bytes([0x82, 127]) + (1 << 63).to_bytes(8, "big"), 1002, "top bit"),
    ],
)
def test_broken_framing_is_refused_with_the_rfc_close_code(
    data: bytes, code: int, words: str
) -> None:
    reader = FrameReader(BIG)
    reader.feed(data)
    with pytest.raises(FrameError, match=words) as caught:
        read_all(reader)
    assert caught.value.code == code


def test_a_message_over_the_limit_is_1009_also_when_fragmented() -> None:
    sender = server()
    reader = FrameReader(100)
    reader.feed(sender.send(BytesMessage(data=b"x" * 101)))
    with pytest.raises(FrameError) as caught:
        read_all(reader)
    assert caught.value.code == 1009
    reader = FrameReader(100)
    reader.feed(
        sender.send(BytesMessage(data=b"x" * 60, message_finished=False))
        + sender.send(BytesMessage(data=b"x" * 60, message_finished=True))
    )
    with pytest.raises(FrameError) as caught:
        read_all(reader)
    assert caught.value.code == 1009


@given(st.binary(max_size=512), st.integers(min_value=1, max_value=64))
def test_arbitrary_bytes_raise_nothing_but_frame_errors(data: bytes, step: int) -> None:
    reader = FrameReader(1024)
    try:
        for i in range(0, len(data), step):
            reader.feed(data[i : i + step])
            read_all(reader)
    except FrameError as exc:
        assert exc.code in (1002, 1007, 1009)


@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=300)), max_size=8))
def test_any_sequence_of_messages_comes_back_whole_and_in_order(
    messages: list[tuple[bool, bytes]],
) -> None:
    sender = server()
    data = b""
    expected: list[tuple[int, str | bytes]] = []
    for is_text, body in messages:
        if is_text:
            text = body.decode("latin-1")
            data += sender.send(TextMessage(data=text))
            expected.append((TEXT, text))
        else:
            data += sender.send(BytesMessage(data=body))
            expected.append((BINARY, body))
    reader = FrameReader(BIG)
    reader.feed(data)
    assert read_all(reader) == expected
