"""The outbox's drop policy and the protocol's message parsing, without sockets."""

from __future__ import annotations

import pytest
import trio

from liveactors import events as ev
from liveactors.web._messages import (
    ActivityEnd,
    ActivityStart,
    BadMessage,
    Redactor,
    SendText,
    Stop,
    dumps,
    parse_command,
)
from liveactors.web._outbox import Outbox


def audio(seq: int, turn: int = 1, size: int = 100) -> ev.AudioChunk:
    return ev.AudioChunk("c", seq, turn, bytes(size))


def words(seq: int, turn: int = 1) -> ev.OutputTranscript:
    return ev.OutputTranscript("c", seq, turn, f"w{seq}")


def drain(box: Outbox) -> list[int]:
    box.close()
    seqs = []
    while True:
        item = trio.run(box.get)
        if item is None:
            return seqs
        seqs.append(item.seq)


def test_audio_over_the_limit_drops_the_oldest_audio_first() -> None:
    box = Outbox(audio_buffer=300, event_buffer=10)
    box.put(audio(1))
    box.put(words(2))
    box.put(audio(3))
    box.put(audio(4))
    box.put(audio(5))  # 400 bytes: the oldest chunk goes, the words stay
    assert box.drops == (1, 100, 0)
    stats = box.statistics()
    assert stats.queued_audio_bytes == 300 and stats.peak_audio_bytes == 300
    assert drain(box) == [2, 3, 4, 5]


def test_other_events_over_the_limit_drop_the_oldest_event() -> None:
    box = Outbox(audio_buffer=1000, event_buffer=2)
    box.put(words(1))
    box.put(audio(2))
    box.put(words(3))
    box.put(words(4))
    assert box.drops == (0, 0, 1)
    assert drain(box) == [2, 3, 4]


def test_a_chunk_larger_than_the_whole_buffer_is_dropped_alone() -> None:
    box = Outbox(audio_buffer=150, event_buffer=10)
    box.put(audio(1))
    box.put(audio(2, size=200))
    assert box.drops == (1, 200, 0)
    assert drain(box) == [1]


def test_audio_of_an_interrupted_turn_is_left_out_without_counting() -> None:
    box = Outbox(audio_buffer=1000, event_buffer=10)
    box.put(audio(1, turn=1))
    box.put(words(2, turn=1))
    box.put(audio(3, turn=1))
    box.put(ev.Interrupted("c", 4, 1))
    box.put(audio(5, turn=1))  # late audio of the cut turn
    box.put(audio(6, turn=2))
    assert box.drops == (0, 0, 0)
    assert box.statistics().stale_audio_chunks == 3
    assert drain(box) == [2, 4, 6]


def test_subscription_drops_count_as_dropped_events() -> None:
    box = Outbox(audio_buffer=10, event_buffer=10)
    box.upstream_dropped = 3
    assert box.drops == (0, 0, 3)


async def test_get_waits_for_an_event_and_ends_after_close() -> None:
    box = Outbox(audio_buffer=1000, event_buffer=10)
    got: list[ev.Event | None] = []

    async def reader() -> None:
        got.append(await box.get())
        got.append(await box.get())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.sleep(0.01)
        box.put(words(1))
        await trio.sleep(0.01)
        box.close()
    assert [g.seq if g else None for g in got] == [1, None]
    box.put(words(2))  # after close: ignored
    assert len(box) == 0


@pytest.mark.parametrize(
    ("frame", "command"),
    [
        ('{"type": "text", "text": "hi"}', SendText("hi")),
        ('{"type": "activity_start"}', ActivityStart()),
        ('{"type": "activity_end", "extra": 1}', ActivityEnd()),
        ('{"type": "stop"}', Stop()),
    ],
)
def test_commands_parse(frame: str, command: object) -> None:
    assert parse_command(frame) == command


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("hello", "JSON object"),
        ("[1, 2]", "JSON object"),
        ('{"text": "no type"}', "unknown message type None"),
        ('{"type": "config"}', "unknown message type 'config'"),
        ('{"type": "text"}', '"text" must be a string'),
    ],
)
def test_bad_frames_say_what_is_wrong(frame: str, message: str) -> None:
    with pytest.raises(BadMessage, match=message):
        parse_command(frame)


def test_the_redactor_hides_credentials_in_every_text_frame() -> None:
    redactor = Redactor(["", "short", "AIzaSy-a-long-key-123", "Token AIzaSy-a-long-key-123"])
    frame = dumps({"type": "error", "message": "bad key AIzaSy-a-long-key-123"}, redactor)
    assert frame == '{"type":"error","message":"bad key <redacted>"}'
    # Strings too short to be credentials are left alone.
    assert "short" in dumps({"text": "short"}, redactor)
