"""Events: every server message becomes typed events, numbered gap-free (``seq``) and by model
turn (``turn``), framed by ``Connected`` first and ``ConversationClosed`` last; the statistics
count what happened."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import trio
from trio.testing import MockClock

import liveactors
from liveactors import events
from liveactors._models import FAKE_TEXT_MODEL
from liveactors.testing import SendMessage, SendPart, TurnContext

from .conftest import (
    AUDIO,
    AUDIO_MODEL,
    check_seq,
    conversation,
    drain,
    fake,
    recording,
)


async def run_and_collect(
    server: Any, questions: list[str], config: Any = None, **kw: Any
) -> tuple[list[events.Event], liveactors.ConversationRef]:
    """Spawn a conversation with an orchestrator-wide subscriber already listening, ask
    ``questions`` one by one, stop, and return every event the conversation published."""
    backend = server.backend(model=kw.pop("model", FAKE_TEXT_MODEL))
    async with (
        liveactors.open_orchestrator(backend) as orch,
        orch.subscribe(conversation="c1", buffer=10_000) as sub,
    ):
        conv = await orch.spawn(config or {"response_modalities": ["TEXT"]}, name="c1")
        for question in questions:
            await conv.ask(question)
        await trio.sleep(1)  # the resumption update that follows the last answer
        await conv.stop()
        # The orchestrator-wide subscription stays open; take what the conversation sent.
        got = []
        while (event := sub.receive_nowait()) is not None:
            got.append(event)
        return got, conv


async def test_connected_is_first_and_conversation_closed_last(autojump_clock: MockClock) -> None:
    async with fake() as server:
        got, _ = await run_and_collect(server, ["a", "b"])
    first, last = got[0], got[-1]
    assert isinstance(first, events.Connected)
    assert (first.session_id, first.resumed, first.connection) == ("session-1", False, 1)
    assert first.seq == 1
    assert first.turn == 1
    assert isinstance(last, events.ConversationClosed)
    assert sum(isinstance(e, events.ConversationClosed) for e in got) == 1
    assert sum(isinstance(e, events.Connected) for e in got) == 1
    check_seq(got)
    assert {e.conversation for e in got} == {"c1"}


async def test_each_server_message_becomes_its_events(autojump_clock: MockClock) -> None:
    async with fake(chunks=3) as server:
        got, _ = await run_and_collect(server, ["one", "two", "three"])
        sent = server.log.server_messages()
    kinds = Counter(type(e).__name__ for e in got)
    text_parts = [
        part["text"]
        for m in sent
        for part in m.message.get("serverContent", {}).get("modelTurn", {}).get("parts", [])
    ]
    assert [e.text for e in got if isinstance(e, events.TextDelta)] == text_parts
    assert kinds["TextDelta"] == 9
    assert kinds["GenerationComplete"] == len(
        [m for m in sent if m.kind.endswith("generationComplete")]
    )
    assert kinds["TurnComplete"] == len([m for m in sent if m.kind.endswith("turnComplete")]) == 3
    assert kinds["Usage"] == len([m for m in sent if "usageMetadata" in m.message]) == 3
    updates = [
        m.message["sessionResumptionUpdate"] for m in sent if "sessionResumptionUpdate" in m.message
    ]
    got_updates = [e for e in got if isinstance(e, events.ResumptionUpdate)]
    assert [(e.handle, e.resumable) for e in got_updates] == [
        (u.get("newHandle"), bool(u.get("resumable"))) for u in updates
    ]
    # Handles never show in a repr.
    for update in got_updates:
        if update.handle:
            assert update.handle not in repr(update)
    usage = [e.metadata.total_token_count for e in got if isinstance(e, events.Usage)]
    assert usage == [
        m.message["usageMetadata"]["totalTokenCount"] for m in sent if "usageMetadata" in m.message
    ]


async def test_parts_transcripts_and_signals_become_typed_events(autojump_clock: MockClock) -> None:
    def responder(ctx: TurnContext) -> Any:
        return [
            SendPart({"executableCode": {"language": "PYTHON", "code": "print(1)"}}),
            SendPart({"text": "pondering", "thought": True}),
            SendMessage({"voiceActivity": {"type": "ACTIVITY_START"}}),
            SendMessage({"serverContent": {"groundingMetadata": {"webSearchQueries": ["q"]}}}),
            "said",
        ]

    config = dict(AUDIO, input_audio_transcription={}, output_audio_transcription={})
    async with (
        fake(responder=responder, chunks=1) as server,
        conversation(server, config, model=AUDIO_MODEL) as (_, conv),
        recording(conv.subscribe) as rec,
    ):
        reply = await conv.ask("hello")
        await rec.wait_for_event(events.TurnComplete)
    [code, thought] = rec.of(events.ModelPart)
    assert code.part.executable_code is not None
    assert code.part.executable_code.code == "print(1)"
    assert thought.part.thought is True
    assert thought.part.text == "pondering"
    # A thought is not spoken text.
    assert not rec.of(events.TextDelta)
    [activity] = rec.of(events.VoiceActivity)
    assert activity.kind == "ACTIVITY_START"
    [grounding] = rec.of(events.Grounding)
    assert grounding.grounding_metadata is not None
    assert grounding.grounding_metadata.web_search_queries == ["q"]
    [audio] = rec.of(events.AudioChunk)
    assert audio.mime_type == "audio/pcm;rate=24000"
    assert len(audio.data) == 4800
    assert [e.text for e in rec.of(events.OutputTranscript)] == ["said"]
    assert reply.text == "said"
    assert {e.turn for e in rec.events if not isinstance(e, events.ResumptionUpdate)} == {1}


async def test_turn_numbers_follow_the_model_turns(autojump_clock: MockClock) -> None:
    async with fake() as server:
        got, _ = await run_and_collect(server, ["a", "b", "c", "d"])
    completes = [e for e in got if isinstance(e, events.TurnComplete)]
    assert [e.turn for e in completes] == [1, 2, 3, 4]
    assert not any(e.interrupted for e in completes)
    # Everything of turn n lies between TurnComplete n-1 and TurnComplete n; events between
    # turns carry the next turn's number.
    current = 1
    for event in got:
        assert event.turn == current, (event, current)
        if isinstance(event, events.TurnComplete):
            current += 1
    text_by_turn: dict[int, str] = {}
    for event in got:
        if isinstance(event, events.TextDelta):
            text_by_turn[event.turn] = text_by_turn.get(event.turn, "") + event.text
    assert text_by_turn == {1: "echo #1: a", 2: "echo #2: b", 3: "echo #3: c", 4: "echo #4: d"}
    assert got[-1].turn == 5


async def test_seq_continues_across_a_reconnect(autojump_clock: MockClock) -> None:
    async with (
        fake() as server,
        conversation(server) as (_, conv),
        conv.subscribe(buffer=10_000) as sub,
    ):
        await conv.ask("before")
        server.faults.drop_now()
        reply = await conv.ask("after")
        assert reply.text.endswith(": after")
        await conv.stop()
        got = await drain(sub)
    check_seq(got, first=got[0].seq)
    kinds = [type(e).__name__ for e in got]
    assert kinds.count("Connected") == 1
    assert kinds.count("Reconnecting") == 1
    reconnecting = next(e for e in got if isinstance(e, events.Reconnecting))
    assert reconnecting.attempt == 1
    assert reconnecting.delay == 0.5
    connected = next(e for e in got if isinstance(e, events.Connected))
    assert connected.connection == 2
    assert kinds.index("Reconnecting") < kinds.index("Connected")
    assert isinstance(got[-1], events.ConversationClosed)
    # The turn counter goes on too.
    assert [e.turn for e in got if isinstance(e, events.TurnComplete)] == [1, 2]


async def test_go_away_becomes_an_event(autojump_clock: MockClock) -> None:
    async with (
        fake() as server,
        conversation(server) as (_, conv),
        recording(conv.subscribe) as rec,
    ):
        server.faults.go_away_now(time_left=4.5)
        go_away = await rec.wait_for_event(events.GoAway)
        assert go_away.time_left == 4.5
        await rec.wait_for_event(events.Connected)
        assert conv.statistics().handoffs == 1


async def test_statistics_count_the_conversation(autojump_clock: MockClock) -> None:
    async with fake() as server, conversation(server) as (_, conv):
        start = conv.statistics()
        assert start.name == "c1"
        assert start.state is liveactors.ConversationState.READY
        assert (start.connections, start.reconnects, start.handoffs, start.turns) == (1, 0, 0, 0)
        assert start.tokens == 0
        assert start.mailbox == 0
        assert start.subscribers == 0
        assert start.events_dropped == 0
        await conv.ask("one")
        await conv.ask("two")
        await trio.sleep(7.0)
        async with conv.subscribe(), conv.subscribe(events.TurnComplete):
            assert conv.statistics().subscribers == 2
        stats = conv.statistics()
        assert stats.subscribers == 0
        assert stats.turns == 2
        assert stats.connections == 1
        usage = [
            m.message["usageMetadata"]["totalTokenCount"]
            for m in server.log.server_messages()
            if "usageMetadata" in m.message
        ]
        assert stats.tokens == sum(usage) > 0
        assert stats.messages_in == len(server.log.server_messages())
        # The newest handle came right after the second answer, 7 s ago.
        assert stats.last_handle_age == pytest.approx(7.0)

        server.faults.drop_now()
        await conv.ask("three")
        await trio.sleep(1)
        stats = conv.statistics()
        assert (stats.connections, stats.reconnects, stats.turns) == (2, 1, 3)
        assert stats.last_handle_age == 1.0
        assert stats.messages_in == len(server.log.server_messages())
        await conv.stop()
        assert conv.statistics().state is liveactors.ConversationState.CLOSED


async def test_last_handle_age_is_none_before_any_handle(autojump_clock: MockClock) -> None:
    async with fake() as server:
        # A session without resumption updates: stall them all.
        server.faults.stall(kind="sessionResumptionUpdate", connection="all")
        async with conversation(server) as (_, conv):
            assert conv.statistics().last_handle_age is None
            server.faults.clear()
            await conv.ask("hi")
            assert conv.statistics().last_handle_age == 0.0


async def test_messages_out_counts_every_client_message(autojump_clock: MockClock) -> None:
    async with (
        fake() as server,
        conversation(server) as (_, conv),
        recording(conv.subscribe, events.Connected) as rec,
    ):
        await conv.ask("one")
        server.faults.drop_now()
        await rec.wait_for_event(events.Connected)
        await conv.ask("two")
        await trio.sleep(1)  # the resumption update after the answer
        # setup and setupComplete count too, on every connection.
        assert conv.statistics().messages_out == len(server.log.client_messages()) == 4
        assert conv.statistics().messages_in == len(server.log.server_messages())


async def test_messages_out_counts_input_as_sent(autojump_clock: MockClock) -> None:
    async with fake() as server, conversation(server) as (_, conv):
        await conv.ask("one")
        await conv.send_text("note", turn_complete=False)
        await conv.ask("two")
        assert conv.statistics().messages_out == len(server.log.client_messages()) == 4


async def test_events_are_frozen(autojump_clock: MockClock) -> None:
    async with fake() as server, conversation(server) as (_, conv), conv.subscribe() as sub:
        await conv.send_text("x")
        event = await sub.__anext__()
    with pytest.raises(AttributeError):
        event.seq = 0  # type: ignore[misc]


async def test_conversations_number_their_events_independently(
    autojump_clock: MockClock,
) -> None:
    async with fake() as server:
        backend = server.backend(model=FAKE_TEXT_MODEL)
        async with (
            liveactors.open_orchestrator(backend) as orch,
            orch.subscribe(buffer=10_000) as sub,
        ):
            a = await orch.spawn({"response_modalities": ["TEXT"]}, name="a")
            b = await orch.spawn({"response_modalities": ["TEXT"]}, name="b")
            async with trio.open_nursery() as nursery:
                for i in range(3):
                    nursery.start_soon(a.ask, f"a{i}")
                    nursery.start_soon(b.ask, f"b{i}")
                    await trio.sleep(1)
            await a.stop()
            await b.stop()
            got = []
            while (event := sub.receive_nowait()) is not None:
                got.append(event)
    for name in ("a", "b"):
        mine = [e for e in got if e.conversation == name]
        check_seq(mine)
        assert isinstance(mine[0], events.Connected)
        assert isinstance(mine[-1], events.ConversationClosed)
        assert [e.turn for e in mine if isinstance(e, events.TurnComplete)] == [1, 2, 3]
