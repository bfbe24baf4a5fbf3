"""``ReplyBuilder``: one whole turn assembled from its events."""

from __future__ import annotations

import itertools

import pytest
import trio
import trio.testing
from google.genai import types

from liveactors import ConnectionLost, ConversationStopped, Reply, events
from liveactors._reply import Replies, ReplyBuilder

_seq = itertools.count(1)


def ev(cls: type[events.Event], **fields: object) -> events.Event:
    return cls(conversation="c", seq=next(_seq), turn=3, **fields)


def usage(total: int) -> events.Event:
    return ev(events.Usage, metadata=types.UsageMetadata(total_token_count=total))


async def finished(builder: ReplyBuilder, turn: int = 3) -> Reply:
    builder.complete(turn)
    return await builder.wait()


async def test_text_turn() -> None:
    b = ReplyBuilder()
    for chunk in ("Hel", "lo", " there"):
        b.feed(ev(events.TextDelta, text=chunk))
    b.feed(ev(events.GenerationComplete))
    b.feed(usage(12))
    reply = await finished(b, turn=7)
    assert reply == Reply(
        text="Hello there",
        usage=types.UsageMetadata(total_token_count=12),
        turn=7,
    )
    assert reply.audio == b""
    assert not reply.interrupted


async def test_audio_turn_text_is_the_output_transcript_and_audio_is_concatenated() -> None:
    b = ReplyBuilder()
    b.feed(ev(events.InputTranscript, text="what time "))
    b.feed(ev(events.InputTranscript, text="is it?"))
    b.feed(ev(events.AudioChunk, data=b"\x01\x02"))
    b.feed(ev(events.OutputTranscript, text="It is "))
    b.feed(ev(events.AudioChunk, data=b"\x03\x04"))
    b.feed(ev(events.OutputTranscript, text="noon."))
    b.feed(ev(events.AudioChunk, data=b"\x05\x06"))
    reply = await finished(b)
    assert reply.text == "It is noon."
    assert reply.output_transcript == "It is noon."
    assert reply.audio == b"\x01\x02\x03\x04\x05\x06"
    assert reply.input_transcript == "what time is it?"
    assert "<6 bytes>" in repr(reply)
    assert "\\x01" not in repr(reply)


async def test_model_text_wins_over_the_output_transcript() -> None:
    b = ReplyBuilder()
    b.feed(ev(events.OutputTranscript, text="spoken"))
    b.feed(ev(events.TextDelta, text="written"))
    reply = await finished(b)
    assert reply.text == "written"
    assert reply.output_transcript == "spoken"


async def test_the_last_usage_counts() -> None:
    b = ReplyBuilder()
    b.feed(usage(5))
    b.feed(usage(9))
    reply = await finished(b)
    assert reply.usage is not None and reply.usage.total_token_count == 9


async def test_interrupted_and_tool_calls() -> None:
    b = ReplyBuilder()
    calls1 = (types.FunctionCall(id="1", name="a", args={}),)
    calls2 = (types.FunctionCall(id="2", name="b", args={"x": 1}),)
    b.feed(ev(events.ToolCall, calls=calls1))
    b.feed(ev(events.ToolCall, calls=calls2))
    b.feed(ev(events.TextDelta, text="partial"))
    b.feed(ev(events.Interrupted))
    reply = await finished(b)
    assert reply.interrupted
    assert reply.tool_calls == calls1 + calls2
    assert reply.text == "partial"


async def test_unrelated_events_are_ignored() -> None:
    b = ReplyBuilder()
    b.feed(ev(events.GoAway, time_left=3.0))
    b.feed(ev(events.ResumptionUpdate, handle="h", resumable=True))
    b.feed(ev(events.GenerationComplete))
    reply = await finished(b)
    assert reply == Reply(text="", turn=3)


async def test_reset_forgets_the_partial_answer_of_a_lost_connection() -> None:
    b = ReplyBuilder()
    b.feed(ev(events.TextDelta, text="half an ans"))
    b.feed(ev(events.AudioChunk, data=b"\x00\x00"))
    b.feed(ev(events.InputTranscript, text="q"))
    b.feed(ev(events.OutputTranscript, text="half"))
    b.feed(ev(events.Interrupted))
    b.feed(usage(3))
    b.feed(ev(events.ToolCall, calls=(types.FunctionCall(id="1", name="f"),)))
    b.reset()
    b.feed(ev(events.TextDelta, text="the whole answer"))
    reply = await finished(b, turn=4)
    assert reply == Reply(text="the whole answer", turn=4)


async def test_wait_blocks_until_the_turn_completes() -> None:
    b = ReplyBuilder()
    got: list[Reply] = []

    async def waiter() -> None:
        got.append(await b.wait())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        b.feed(ev(events.TextDelta, text="hi"))
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        b.complete(1)
    assert [r.text for r in got] == ["hi"]


async def test_fail_makes_wait_raise_the_error() -> None:
    b = ReplyBuilder()
    b.feed(ev(events.TextDelta, text="never finished"))
    error = ConversationStopped("conversation 'c' is closed")
    b.fail(error)
    with pytest.raises(ConversationStopped) as info:
        await b.wait()
    assert info.value is error


async def test_fail_after_completion_is_ignored() -> None:
    b = ReplyBuilder()
    b.feed(ev(events.TextDelta, text="done"))
    b.complete(2)
    b.fail(ConnectionLost("too late"))
    reply = await b.wait()
    assert reply.text == "done"


async def test_first_failure_wins() -> None:
    b = ReplyBuilder()
    first = ConnectionLost("first")
    b.fail(first)
    b.fail(ConnectionLost("second"))
    with pytest.raises(ConnectionLost) as info:
        await b.wait()
    assert info.value is first


# -- Replies: the asks waiting, by exchange --------------------------------------------------


async def test_replies_feed_only_the_exchange_being_answered_and_complete_on_its_turn() -> None:
    replies = Replies()
    first, second = ReplyBuilder(), ReplyBuilder()
    replies.expect(1, first)
    replies.expect(2, second)
    replies.expect(None, ReplyBuilder())  # a message that joined no exchange waits for nothing
    replies.expect(3, None)  # send_text: nobody waits
    assert len(replies) == 2
    replies.take(1, ev(events.TextDelta, text="one"))
    replies.take(None, ev(events.TextDelta, text="nobody's"))
    replies.take(1, ev(events.TurnComplete))
    assert (await first.wait()).text == "one"
    assert len(replies) == 1
    replies.take(2, ev(events.TextDelta, text="two"))
    replies.take(2, ev(events.TurnComplete))
    assert (await second.wait()).text == "two"
    assert len(replies) == 0


async def test_replies_reset_a_cut_answer_and_fail_all_at_the_end() -> None:
    replies = Replies()
    cut, waiting = ReplyBuilder(), ReplyBuilder()
    replies.expect(1, cut)
    replies.expect(2, waiting)
    replies.take(1, ev(events.TextDelta, text="half an ans"))
    replies.reset(1)  # the connection died: the answer is regenerated
    replies.reset(None)
    replies.take(1, ev(events.TextDelta, text="the whole answer"))
    replies.take(1, ev(events.TurnComplete))
    assert (await cut.wait()).text == "the whole answer"
    replies.fail_all(lambda: ConversationStopped("closed"))
    with pytest.raises(ConversationStopped, match="closed"):
        await waiting.wait()
    assert len(replies) == 0
