"""RESP2 without a server (``liveactors.cluster._resp``): commands packed byte for byte as
the protocol says, replies parsed however the bytes are split, error replies as exceptions
of the kind their code names, and stream replies shaped for the cluster's readers."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from liveactors.cluster._resp import (
    INCOMPLETE,
    AuthenticationError,
    NoScriptError,
    ProtocolError,
    ReadOnlyError,
    RespError,
    RespReader,
    pack,
    pack_many,
    script_sha,
    stream_entries,
    stream_id,
    text,
)


def test_a_command_is_an_array_of_bulk_strings() -> None:
    assert pack(["SET", "k", "v"]) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
    # str as UTF-8 (lengths in bytes), bytes as they are, numbers in decimal.
    assert pack(("ECHO", "é", b"\x00\xff", 42, -7, 1.5)) == (
        b"*6\r\n$4\r\nECHO\r\n$2\r\n\xc3\xa9\r\n$2\r\n\x00\xff\r\n$2\r\n42\r\n$2\r\n-7\r\n"
        b"$3\r\n1.5\r\n"
    )
    # Bytes that look like the protocol are only bytes.
    tricky = b"\r\n*1\r\n"
    assert pack(["SET", "k", tricky]) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$6\r\n" + tricky + b"\r\n"
    assert pack_many([["PING"], ["GET", "k"]]) == pack(["PING"]) + pack(["GET", "k"])


@pytest.mark.parametrize("bad", [[], ["SET", "k", None], ["SET", "k", True]])
def test_what_is_no_command_is_refused(bad: list[Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        pack(bad)


REPLIES = (
    b"+OK\r\n"
    b":42\r\n"
    b"$5\r\nhello\r\n"
    b"$-1\r\n"
    b"*-1\r\n"
    b"*3\r\n$1\r\na\r\n*2\r\n:1\r\n$0\r\n\r\n$-1\r\n"
    b"$6\r\n\x00\r\n\xff\r\n\r\n"
)
EXPECTED: list[Any] = [b"OK", 42, b"hello", None, None, [b"a", [1, b""], None], b"\x00\r\n\xff\r\n"]


@pytest.mark.parametrize("size", [1, 2, 3, 7, len(REPLIES)])
def test_replies_whatever_the_bytes_are_split_into(size: int) -> None:
    reader = RespReader()
    assert reader.get() is INCOMPLETE
    got = []
    for start in range(0, len(REPLIES), size):
        reader.feed(REPLIES[start : start + size])
        while (reply := reader.get()) is not INCOMPLETE:
            got.append(reply)
    assert got == EXPECTED
    assert not reader.has_data()


def test_error_replies_are_exceptions_by_code() -> None:
    reader = RespReader()
    reader.feed(
        b"-NOSCRIPT No matching script. Please use EVAL.\r\n"
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        b"-NOAUTH Authentication required.\r\n"
        b"-READONLY You can't write against a read only replica.\r\n"
        b"-MOVED 3999 127.0.0.1:6381\r\n"
        b"-ERR unknown command 'NOPE'\r\n"
    )
    kinds = [NoScriptError, AuthenticationError, AuthenticationError, ReadOnlyError]
    kinds += [RespError, RespError]
    codes = ["NOSCRIPT", "WRONGPASS", "NOAUTH", "READONLY", "MOVED", "ERR"]
    for kind, code in zip(kinds, codes, strict=True):
        error = reader.get()
        assert type(error) is kind, error
        assert isinstance(error, RespError) and error.code == code
        assert str(error) == error.message and error.message.startswith(code)
    assert reader.get() is INCOMPLETE


def test_an_error_inside_an_array_stays_in_its_place() -> None:
    reader = RespReader()
    reader.feed(b"*3\r\n:1\r\n-ERR boom\r\n$1\r\nx\r\n")
    first, error, last = reader.get()
    assert (first, last) == (1, b"x")
    assert isinstance(error, RespError) and error.message == "ERR boom"


def test_bytes_that_are_not_resp_are_a_protocol_error() -> None:
    reader = RespReader()
    reader.feed(b"?what\r\n")
    with pytest.raises(ProtocolError):
        reader.get()
    assert issubclass(ProtocolError, ConnectionError)  # the connection is done for


def test_text_decodes_strings_at_any_depth_and_leaves_the_rest() -> None:
    error = RespError("ERR x")
    assert text([b"a", [1, None, b"\xc3\xa9"], error]) == ["a", [1, None, "é"], error]
    assert text(b"OK") == "OK" and text(7) == 7 and text(None) is None


def test_stream_replies() -> None:
    # XRANGE: [[id, [field, value, ...]], ...]; values stay bytes (media are raw).
    reply = [[b"1-1", [b"e", b"{}", b"a", b""]], [b"2-1", [b"e", b"\x00\xff"]], [b"3-0", None]]
    assert stream_entries(reply) == [
        ("1-1", {"e": b"{}", "a": b""}),
        ("2-1", {"e": b"\x00\xff"}),
        ("3-0", {}),
    ]
    assert stream_entries(None) == [] and stream_entries([]) == []
    # Ids compare as numbers, not as text.
    assert stream_id("10-1") > stream_id("9-1") and stream_id("5-10") > stream_id("5-9")
    assert stream_id("7") == (7, 0)


def test_script_sha_is_the_servers_name_for_it() -> None:
    source = "return redis.call('GET', KEYS[1])"
    assert script_sha(source) == hashlib.sha1(source.encode()).hexdigest()
    assert script_sha(source) == script_sha(source)
