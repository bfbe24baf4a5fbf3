"""Commands and the mailbox: every ``send_*`` reaches the service in order, bad input is refused
at the call site without touching the conversation, a full mailbox makes senders wait, and
``ask`` returns one whole turn."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from decimal import Decimal
from functools import partial
from typing import Any

import attrs
import pytest
import trio
from google.genai import types
from trio.testing import MockClock

import liveactors
from liveactors import events

from .conftest import (
    AUDIO,
    AUDIO_MODEL,
    MANUAL_VAD,
    SLOW_RESTART,
    TEXT_MODEL,
    client_bodies,
    conversation,
    fake,
    pcm,
    recording,
    user_texts,
)

Command = Callable[[liveactors.ConversationRef], Awaitable[Any]]


MIB = 2**20


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_every_send_kind_reaches_the_server_in_order(autojump_clock: MockClock) -> None:
    frame = b"\xff\xd8\xff\xe0fake-jpeg"
    silence = pcm(0.05, loud=False)
    async with fake() as server, conversation(server) as (_, conv):
        await conv.send_text("first", turn_complete=False)
        await conv.send_content(
            [
                types.Content(role="user", parts=[types.Part(text="second")]),
                {"role": "model", "parts": [{"text": "noted"}]},
            ],
            turn_complete=False,
        )
        await conv.send_audio(silence, rate=16000)
        await conv.send_video(frame, mime_type="image/png")
        await conv.send_audio(silence, rate=24000)
        await conv.audio_stream_end()
        await conv.send_realtime_text("third")
        await server.log.wait_for(lambda: server.log.answered())

        messages = server.log.client_messages(connection=1)
        assert [m.kind for m in messages] == [
            "setup",
            "clientContent",
            "clientContent",
            "realtimeInput.audio",
            "realtimeInput.video",
            "realtimeInput.audio",
            "realtimeInput.audioStreamEnd",
            "realtimeInput.text",
        ]
        bodies = [m.body for m in messages[1:]]
        assert bodies[0] == {
            "turns": [{"role": "user", "parts": [{"text": "first"}]}],
        }
        assert bodies[1] == {
            "turns": [
                {"role": "user", "parts": [{"text": "second"}]},
                {"role": "model", "parts": [{"text": "noted"}]},
            ]
        }
        assert bodies[2] == {"audio": {"mimeType": "audio/pcm;rate=16000", "data": b64(silence)}}
        assert bodies[3] == {"video": {"mimeType": "image/png", "data": b64(frame)}}
        assert bodies[4] == {"audio": {"mimeType": "audio/pcm;rate=24000", "data": b64(silence)}}
        assert bodies[5] == {"audioStreamEnd": True}
        assert bodies[6] == {"text": "third"}
        # The realtime text asked for an answer; the model turn in the content answered what
        # came before it.
        assert server.log.answered() == ["third"]


async def test_text_turns_are_answered_in_the_order_sent(autojump_clock: MockClock) -> None:
    async with fake() as server, conversation(server) as (_, conv):
        for i in range(5):
            await conv.send_text(f"q{i}")
        await server.log.wait_for(
            lambda: any("q4" in t.user_text and t.completed for t in server.log.turns)
        )
        assert user_texts(server) == [f"q{i}" for i in range(5)]
        # Quick questions barge in on the answers in progress; every question is taken up
        # by exactly one turn, in the order sent.
        taken = " ".join(t.user_text for t in server.log.turns).split()
        assert taken == [f"q{i}" for i in range(5)]


async def test_manual_vad_activity_signals_reach_the_server(autojump_clock: MockClock) -> None:
    config = dict(AUDIO, realtime_input_config=MANUAL_VAD)
    async with (
        fake() as server,
        conversation(server, config, model=AUDIO_MODEL) as (_, conv),
        recording(conv.subscribe, events.TurnComplete) as rec,
    ):
        await conv.activity_start()
        await conv.send_audio(pcm(0.2, loud=False))
        await conv.send_audio(pcm(0.3))
        await conv.activity_end()
        await rec.wait_for_event(events.TurnComplete)
        assert server.log.client_kinds(1) == [
            "setup",
            "realtimeInput.activityStart",
            "realtimeInput.audio",
            "realtimeInput.audio",
            "realtimeInput.activityEnd",
        ]
        # With manual VAD all audio between the signals counts, silence included.
        assert server.log.answered() == ["<audio 0.50s>"]


# -- invalid commands -----------------------------------------------------------------------

INVALID: list[tuple[str, Command, str]] = [
    ("text not str", lambda c: c.send_text(b"hi"), "text must be a str"),
    ("turn_complete not bool", lambda c: c.send_text("x", turn_complete=1), "turn_complete"),
    ("content wrong type", lambda c: c.send_content(42), "turns must be"),
    (
        "content bad role",
        lambda c: c.send_content([{"role": "system", "parts": [{"text": "x"}]}]),
        "role must be 'user' or 'model'",
    ),
    ("audio not bytes", lambda c: c.send_audio("pcm"), "audio must be bytes"),
    ("audio rate too low", lambda c: c.send_audio(pcm(0.01), rate=4000), "rate must be between"),
    ("audio rate too high", lambda c: c.send_audio(pcm(0.01), rate=96000), "not 96000"),
    ("audio rate float", lambda c: c.send_audio(pcm(0.01), rate=16000.0), "rate must be an int"),
    ("audio odd length", lambda c: c.send_audio(b"\x00\x01\x02"), "odd length of 3 bytes"),
    ("audio empty", lambda c: c.send_audio(b""), "audio chunk is empty"),
    ("video not bytes", lambda c: c.send_video("frame"), "video frame must be bytes"),
    ("video mime", lambda c: c.send_video(b"x", mime_type="video/mp4"), "'video/mp4'"),
    ("video empty", lambda c: c.send_video(b""), "video frame is empty"),
    ("realtime text not str", lambda c: c.send_realtime_text(3), "text must be a str"),
    ("realtime text empty", lambda c: c.send_realtime_text(""), "text is empty"),
    (
        "tool response unknown id",
        lambda c: c.send_tool_response({"id": "fc-404", "name": "f", "response": {}}),
        "no pending tool call with id 'fc-404'",
    ),
    (
        "tool response without id",
        lambda c: c.send_tool_response({"name": "f", "response": {}}),
        "has no id",
    ),
    ("tool response wrong type", lambda c: c.send_tool_response(7), "responses must be"),
    ("tool response empty", lambda c: c.send_tool_response([]), "no tool responses"),
    ("activity_start automatic VAD", lambda c: c.activity_start(), "needs manual VAD"),
    ("activity_end automatic VAD", lambda c: c.activity_end(), "needs manual VAD"),
    ("ask not str", lambda c: c.ask(["hi"]), "text must be a str"),
    # Values JSON cannot hold, and sizes over the limits: refused here, not in the writer.
    ("text lone surrogate", lambda c: c.send_text("a\ud800b"), "text is not valid Unicode"),
    ("text too large", lambda c: c.send_text("x" * 17 * MIB), "text is too large: 17.0 MiB"),
    ("ask lone surrogate", lambda c: c.ask("\udfff"), "text is not valid Unicode"),
    ("ask too large", lambda c: c.ask("é" * 5 * MIB), "text is too large: 10.0 MiB"),
    (
        "content not JSON",
        lambda c: c.send_content(
            [
                types.Part(function_call=types.FunctionCall(name="f", args={"x": Decimal(1)})),
            ]
        ),
        r"turns\[0\]\.parts\[0\]\.functionCall\.args\.x is a Decimal",
    ),
    (
        "content NaN",
        lambda c: c.send_content(
            {"parts": [{"function_response": {"name": "f", "response": {"v": float("nan")}}}]}
        ),
        r"turns\[0\]\.parts\[0\]\.functionResponse\.response\.v is nan",
    ),
    (
        "content lone surrogate",
        lambda c: c.send_content(["fine", "not \ud800 fine"]),
        r"turns\[0\]\.parts\[1\]\.text is not valid Unicode",
    ),
    ("content too large", lambda c: c.send_content("x" * 17 * MIB), "turns is too large"),
    ("audio too large", lambda c: c.send_audio(bytes(5 * MIB)), "audio chunk is too large"),
    ("video too large", lambda c: c.send_video(b"\xff" * 5 * MIB), "video frame is too large"),
    (
        "realtime text surrogate",
        lambda c: c.send_realtime_text("\ud800"),
        "text is not valid Unicode",
    ),
    (
        "realtime text too large",
        lambda c: c.send_realtime_text("x" * 17 * MIB),
        "text is too large",
    ),
    (
        "tool response not JSON",
        lambda c: c.send_tool_response({"id": "fc-1", "response": {"v": Decimal("1.5")}}),
        r"responses\[0\]\.response\.v is a Decimal",
    ),
    (
        "tool response set",
        lambda c: c.send_tool_response([{"id": "fc-1", "response": {"output": {1, 2}}}]),
        r"responses\[0\]\.response\.output is a set",
    ),
    (
        "tool response NaN",
        lambda c: c.send_tool_response(
            types.FunctionResponse(id="fc-1", response={"output": [1.0, float("inf")]})
        ),
        r"responses\[0\]\.response\.output\[1\] is inf",
    ),
    (
        "tool response too large",
        lambda c: c.send_tool_response({"id": "fc-1", "response": {"output": "x" * 9 * MIB}}),
        "responses is too large",
    ),
]


@pytest.mark.parametrize(
    ("command", "message"), [i[1:] for i in INVALID], ids=[i[0] for i in INVALID]
)
async def test_invalid_command_raises_at_the_call_site(
    command: Command, message: str, autojump_clock: MockClock
) -> None:
    async with fake() as server, conversation(server) as (_, conv):
        before = conv.statistics()
        with pytest.raises(liveactors.InvalidCommand, match=message) as caught:
            await command(conv)
        assert isinstance(caught.value, ValueError)
        assert not isinstance(caught.value, liveactors.ConversationStopped)
        # Nothing was queued or sent, and the conversation carries on.
        assert conv.statistics().messages_out == before.messages_out
        assert conv.statistics().mailbox == 0
        assert conv.state is liveactors.ConversationState.READY
        reply = await conv.ask("still there?")
        assert reply.text == "echo #1: still there?"
        assert server.log.client_kinds(1) == ["setup", "clientContent"]


async def test_audio_stream_end_with_manual_vad_is_invalid(autojump_clock: MockClock) -> None:
    config = dict(AUDIO, realtime_input_config=MANUAL_VAD, output_audio_transcription={})
    async with fake() as server, conversation(server, config, model=AUDIO_MODEL) as (_, conv):
        with pytest.raises(liveactors.InvalidCommand, match="activity_end"):
            await conv.audio_stream_end()
        reply = await conv.ask("go on")
        assert reply.output_transcript == "echo #1: go on"
        assert server.log.client_kinds(1) == ["setup", "clientContent"]


async def test_invalid_command_between_valid_ones_keeps_the_order(
    autojump_clock: MockClock,
) -> None:
    async with fake() as server, conversation(server) as (_, conv):
        await conv.send_text("a", turn_complete=False)
        with pytest.raises(liveactors.InvalidCommand):
            await conv.send_audio(b"\x01", rate=16000)
        await conv.send_text("b")
        await server.log.wait_for(lambda: server.log.answered())
        assert user_texts(server) == ["a", "b"]
        assert server.log.answered() == ["a b"]


AFTER_STOP: list[tuple[str, Command]] = [
    ("send_text", lambda c: c.send_text("late")),
    ("send_content", lambda c: c.send_content("late")),
    ("send_audio", lambda c: c.send_audio(pcm(0.01))),
    ("send_video", lambda c: c.send_video(b"jpeg")),
    ("send_realtime_text", lambda c: c.send_realtime_text("late")),
    ("audio_stream_end", lambda c: c.audio_stream_end()),
    ("ask", lambda c: c.ask("late")),
    (
        "send_tool_response",
        lambda c: c.send_tool_response({"id": "fc-1", "name": "f", "response": {}}),
    ),
]


@pytest.mark.parametrize("command", [i[1] for i in AFTER_STOP], ids=[i[0] for i in AFTER_STOP])
async def test_commands_after_stop_raise_conversation_stopped(
    command: Command, autojump_clock: MockClock
) -> None:
    async with fake() as server, conversation(server) as (_, conv):
        await conv.stop()
        assert conv.state is liveactors.ConversationState.CLOSED
        with pytest.raises(liveactors.ConversationStopped, match="'c1' is closed"):
            await command(conv)
        assert isinstance(liveactors.ConversationStopped("x"), liveactors.InvalidCommand)
        # Nothing reached the server after the close; stopping again is harmless.
        assert server.log.client_kinds(1) == ["setup"]
        await conv.stop()
        assert server.log.connections[-1].close_code == 1000


async def test_input_while_stopping_is_refused_or_sent(autojump_clock: MockClock) -> None:
    async with fake(chunks=5, chunk_delay=1.0) as server, conversation(server) as (_, conv):
        await conv.send_text("long question")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conv.stop)
            await trio.sleep(0.5)
            assert conv.state is liveactors.ConversationState.READY  # still stopping
            try:
                await conv.send_text("late")
            except liveactors.ConversationStopped:
                refused = True
            else:
                refused = False
        # Acknowledged input is never lost: refused at the call site, or sent.
        assert refused or "late" in user_texts(server)


async def test_commands_after_stop_with_manual_vad_raise_conversation_stopped(
    autojump_clock: MockClock,
) -> None:
    config = dict(AUDIO, realtime_input_config=MANUAL_VAD)
    async with fake() as server, conversation(server, config, model=AUDIO_MODEL) as (_, conv):
        await conv.stop()
        for command in (conv.activity_start, conv.activity_end):
            with pytest.raises(liveactors.ConversationStopped):
                await command()


async def test_stop_sends_what_was_queued_before_it(autojump_clock: MockClock) -> None:
    async with fake(chunk_delay=1.0) as server, conversation(server) as (_, conv):
        await conv.send_text("one", turn_complete=False)
        await conv.send_text("two")
        await conv.stop()
        assert user_texts(server) == ["one", "two"]
        # stop() lets the answer in progress finish before closing.
        assert server.log.answered() == ["one two"]
        assert server.log.model_turns()[0].reply_text == "echo #1: one two"
        assert server.log.connections[-1].close_code == 1000


# -- backpressure ---------------------------------------------------------------------------


async def test_full_mailbox_makes_the_sender_wait_and_loses_nothing(
    autojump_clock: MockClock,
) -> None:
    """While the conversation is backing off before a reconnect nothing drains the mailbox:
    the 257th send waits, and once connected again every message goes out, in order."""
    count = 300
    async with (
        fake() as server,
        conversation(server, restart=SLOW_RESTART) as (_, conv),
        recording(conv.subscribe, events.Reconnecting, events.Connected) as rec,
    ):
        server.faults.drop_now()
        await rec.wait_for_event(events.Reconnecting)
        accepted = 0

        async def sender() -> None:
            nonlocal accepted
            for i in range(count):
                await conv.send_text(f"m{i}", turn_complete=False)
                accepted += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            await trio.sleep(20)  # well inside the 30 s backoff
            assert conv.state is liveactors.ConversationState.RECONNECTING
            capacity = conv.statistics().mailbox
            assert capacity == 256
            assert accepted == capacity  # the next send is waiting for room
            assert len(server.log.connections) == 1
        # The nursery ends once the sender is done: after the reconnect drained the mailbox.
        assert accepted == count
        await conv.send_text("done")
        await server.log.wait_for(lambda: server.log.answered())
        assert user_texts(server) == [f"m{i}" for i in range(count)] + ["done"]
        assert [m.connection for m in server.log.client_messages(kind="clientContent")] == [2] * (
            count + 1
        )


async def test_waiting_senders_are_served_in_arrival_order(autojump_clock: MockClock) -> None:
    async with (
        fake() as server,
        conversation(server, restart=SLOW_RESTART) as (_, conv),
        recording(conv.subscribe, events.Reconnecting) as rec,
    ):
        server.faults.drop_now()
        await rec.wait_for_event(events.Reconnecting)
        for i in range(256):
            await conv.send_text(f"fill{i}", turn_complete=False)
        async with trio.open_nursery() as nursery:
            for name in ("late-a", "late-b", "late-c"):
                nursery.start_soon(partial(conv.send_text, name, turn_complete=False))
                await trio.sleep(1)
            await trio.sleep(1)
            # All three wait for room; the reconnect has not happened yet.
            assert len(server.log.connections) == 1
            assert conv.statistics().mailbox == 256
        await server.log.wait_for(lambda: len(user_texts(server)) == 259)
        texts = user_texts(server)
        assert texts[-3:] == ["late-a", "late-b", "late-c"]
        assert len(texts) == 259


@attrs.define(eq=False)
class CountingStream(trio.abc.Stream):
    """The client end of an in-memory connection, counting its writes."""

    inner: trio.abc.Stream
    writes: list[int]

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(len(data))
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_input_queued_behind_the_writer_goes_out_in_few_writes(
    autojump_clock: MockClock,
) -> None:
    """A writer that finds input queued (here: 200 messages sent while it reconnected) sends
    what is queued together, one write for many frames, and in order."""
    writes: list[list[int]] = []
    async with fake() as server:

        async def dial(request: liveactors.ConnectRequest) -> trio.abc.Stream:
            writes.append([])
            return CountingStream(await server.dial(request), writes[-1])

        backend = server.backend(model=TEXT_MODEL, transport=liveactors.MemoryTransport(dial))
        async with (
            conversation(server, restart=SLOW_RESTART, backend=backend) as (_, conv),
            recording(conv.subscribe, events.Reconnecting) as rec,
        ):
            server.faults.drop_now()
            await rec.wait_for_event(events.Reconnecting)
            for i in range(200):
                await conv.send_text(f"queued{i}", turn_complete=False)
            await server.log.wait_for(lambda: len(user_texts(server)) == 200)
    assert user_texts(server) == [f"queued{i}" for i in range(200)]
    assert len(writes) == 2
    # The upgrade request and the setup frame, then the queue (at most 32 frames a write),
    # then the close frame.
    assert 2 + 200 / 32 <= len(writes[1]) <= 2 + 200 / 16, writes[1]


async def test_cancelled_sender_leaves_no_trace(autojump_clock: MockClock) -> None:
    """A sender that gives up while waiting for room sends nothing; the others keep their
    order and their places."""
    async with (
        fake() as server,
        conversation(server, restart=SLOW_RESTART) as (_, conv),
        recording(conv.subscribe, events.Reconnecting) as rec,
    ):
        server.faults.drop_now()
        await rec.wait_for_event(events.Reconnecting)
        for i in range(256):
            await conv.send_text(f"fill{i}", turn_complete=False)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(conv.send_text, "before", turn_complete=False))
            await trio.sleep(1)
            with trio.move_on_after(1) as gave_up:
                await conv.send_text("abandoned", turn_complete=False)
            assert gave_up.cancelled_caught
            nursery.start_soon(partial(conv.send_text, "after", turn_complete=False))
            await trio.sleep(1)
        await conv.send_text("end")
        await server.log.wait_for(lambda: "end" in user_texts(server))
        texts = user_texts(server)
        assert "abandoned" not in texts
        assert texts == [f"fill{i}" for i in range(256)] + ["before", "after", "end"]


async def test_ask_fails_when_the_conversation_fails(autojump_clock: MockClock) -> None:
    async with fake(chunks=5, chunk_delay=1.0) as server, conversation(server) as (_, conv):
        errors: list[Exception] = []
        async with trio.open_nursery() as nursery:

            async def ask() -> None:
                try:
                    await conv.ask("question")
                except liveactors.LiveError as exc:
                    errors.append(exc)

            nursery.start_soon(ask)
            await trio.sleep(1.5)
            server.faults.close_now(1008, "Operation is not implemented, or supported.")
        [error] = errors
        assert isinstance(error, liveactors.SessionRejected)
        assert error.code == 1008
        assert "not implemented" in error.reason
        assert conv.state is liveactors.ConversationState.FAILED


# -- ask ------------------------------------------------------------------------------------


async def test_ask_returns_the_whole_turn(autojump_clock: MockClock) -> None:
    async with fake(chunks=3) as server, conversation(server) as (_, conv):
        first = await conv.ask("Hello")
        second = await conv.ask("And again?")
        assert isinstance(first, liveactors.Reply)
        assert first.text == "echo #1: Hello"
        assert first.turn == 1
        assert not first.interrupted
        assert first.audio == b""
        assert first.tool_calls == ()
        sent_usage = [
            m.message["usageMetadata"]
            for m in server.log.server_messages(kind="turnComplete")
            if "usageMetadata" in m.message
        ]
        assert first.usage is not None and second.usage is not None
        assert first.usage.total_token_count == sent_usage[0]["totalTokenCount"]
        assert second.usage.total_token_count == sent_usage[1]["totalTokenCount"]
        assert second.text == "echo #2: And again?"
        assert second.turn == 2
        assert conv.statistics().turns == 2


async def test_concurrent_asks_each_get_their_own_answer(autojump_clock: MockClock) -> None:
    async with fake(chunks=2, chunk_delay=0.5) as server, conversation(server) as (_, conv):
        replies: dict[str, liveactors.Reply] = {}

        async def ask(text: str) -> None:
            replies[text] = await conv.ask(text)

        async with trio.open_nursery() as nursery:
            for text in ("alpha", "beta", "gamma"):
                nursery.start_soon(ask, text)
                await trio.lowlevel.checkpoint()
        # clientContent barges in on a turn in progress; the fake's order decides which
        # question each turn answers, and every ask resolves with exactly its own turn.
        turns = sorted(r.turn for r in replies.values())
        assert len(set(turns)) == 3
        for text, reply in replies.items():
            record = next(
                t for t in server.log.turns if t.turn == reply.turn and t.session == "session-1"
            )
            assert text in record.user_text
            assert reply.interrupted == (record.outcome == "interrupted")


async def test_ask_in_audio_modality_gives_audio_and_its_transcription(
    autojump_clock: MockClock,
) -> None:
    config = dict(AUDIO, output_audio_transcription={})
    async with (
        fake(chunks=3) as server,
        conversation(server, config, model=AUDIO_MODEL) as (_, conv),
        recording(conv.subscribe, events.AudioChunk) as rec,
    ):
        reply = await conv.ask("Hi")
        assert reply.text == "echo #1: Hi"
        assert reply.output_transcript == "echo #1: Hi"
        # Three pieces of 0.1 s of 24 kHz 16-bit PCM.
        assert len(reply.audio) == 3 * 2400 * 2
        await rec.wait_for(lambda: len(rec.of(events.AudioChunk)) == 3)
        assert reply.audio == b"".join(e.data for e in rec.of(events.AudioChunk))
        assert {e.mime_type for e in rec.of(events.AudioChunk)} == {"audio/pcm;rate=24000"}
        assert reply.usage is not None
        assert reply.usage.response_token_count
        assert server.log.answered() == ["Hi"]


async def test_ask_in_audio_modality_without_transcription_has_audio_only(
    autojump_clock: MockClock,
) -> None:
    """Output transcription is on by default; ``output_audio_transcription=None`` given
    explicitly opts out, and then a reply has audio only."""
    opted_out = dict(AUDIO, output_audio_transcription=None)
    async with fake() as server, conversation(server, opted_out, model=AUDIO_MODEL) as (_, conv):
        reply = await conv.ask("Hi")
        [setup] = client_bodies(server, "setup")
        assert "outputAudioTranscription" not in setup
        assert reply.text == ""
        assert reply.output_transcript == ""
        assert len(reply.audio) == 2 * 2400 * 2


async def test_audio_input_is_transcribed(autojump_clock: MockClock) -> None:
    config = dict(AUDIO, input_audio_transcription={}, output_audio_transcription={})
    async with (
        fake() as server,
        conversation(server, config, model=AUDIO_MODEL) as (_, conv),
        recording(conv.subscribe) as rec,
    ):
        await conv.send_audio(pcm(0.3))
        await conv.send_audio(pcm(0.1, loud=False))
        await conv.audio_stream_end()
        done = await rec.wait_for_event(events.TurnComplete)
        [heard] = rec.of(events.InputTranscript)
        assert heard.text == "<audio 0.30s>"
        assert heard.turn == done.turn == 1
        said = "".join(e.text for e in rec.of(events.OutputTranscript))
        assert said == "echo #1: <audio 0.30s>"
        # The ask after a spoken turn is a turn of its own; a text question has no input
        # transcript.
        reply = await conv.ask("and text?")
        assert reply.input_transcript == ""
        assert reply.text == "echo #2: and text?"
        assert server.log.answered() == ["<audio 0.30s>", "and text?"]


async def test_spawn_accepts_a_live_connect_config(autojump_clock: MockClock) -> None:
    config = types.LiveConnectConfig(
        response_modalities=[types.Modality.TEXT],
        system_instruction="be brief",
    )
    async with fake() as server, conversation(server, config) as (_, conv):
        reply = await conv.ask("hi")
        assert reply.text == "echo #1: hi"
        [setup] = client_bodies(server, "setup")
        assert setup["systemInstruction"]["parts"] == [{"text": "be brief"}]
